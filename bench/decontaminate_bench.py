"""decontaminate's default threshold, measured: recall on one-word edits of Korean eval questions, and how many
unrelated rows it flags, on a set held out from the tuning.

    python bench/decontaminate_bench.py                 # seeds 1 (tune) and 2 (held out)
    python bench/decontaminate_bench.py --ngram 3       # the same with another n

Korean questions in KorQuAD's manner (`세종대왕이 훈민정음을 창제한 연도는 언제인가요?`) are put together from a
subject, an object, a verb, an asked noun and an ending, with optional modifiers (a year, a place, an adverb).
The two halves of every word pool are kept apart: the tuning set is built from one half with seed 1, the
held-out set from the other half with seed 2, so no eval question, edit or unrelated row of the held-out set
was seen while choosing.

- **Positives**, one-word edits of an eval question: one word replaced by another of its kind (the ending too:
  `무엇인가요` → `어디인가요`), a particle changed (`이` → `은`), a word put in (`처음`, `가장`, ...) or a word
  taken out; and `HANDWRITTEN`, edits written by hand of KorQuAD-like questions (the issue's
  `…세포 소기관은 무엇인가요?` / `…어디인가요?` among them), reported on their own.
- **Unrelated rows**: other questions from the same pools (the same endings and verbs, other subjects and
  objects; none within one word of an eval question), and Korean instructions of other kinds (`GENERAL`).
- **Two-word edits** are reported for information, not tuned for.

For each row the best coverage of an eval item is taken once (`matches` at threshold 0). The threshold is
chosen on the tuning set, recall first (a copy left in spoils the eval; a row dropped wrongly costs one
training row): the highest threshold that still finds `--recall` (95%) of the one-word edits. Recall, the
share of unrelated rows flagged and precision are then reported at it on the held-out set, with the whole
table, recall by kind of edit, and the threshold with the best F1 on the tuning set for comparison. Results
go to bench/out/decontaminate/results.json.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from sftdata.curate.decontaminate import DEFAULT_THRESHOLD, EvalIndex, matches  # noqa: E402
from sftdata.items import Locator  # noqa: E402

OUT = HERE / "out" / "decontaminate"
SUBJECTS = ["세종대왕", "이순신", "장영실", "정약용", "김구", "유관순", "신사임당", "허준", "안중근", "광개토대왕",
            "을지문덕", "김유신", "최무선", "정몽주", "이황", "이이", "김정호", "박지원", "안창호", "윤동주",
            "고려 정부", "조선 왕실", "대한제국 정부", "신라 조정", "백제", "고구려", "발해", "통일신라", "임시정부",
            "유네스코", "한국은행", "서울시", "부산시", "제주도", "국립중앙박물관", "삼성전자", "현대자동차",
            "카이스트", "서울대학교", "한국전력", "포항제철", "대한항공", "문화재청", "기상청", "국회", "대법원"]
OBJECTS = ["훈민정음", "거북선", "측우기", "목민심서", "동의보감", "백범일지", "대동여지도", "열하일기",
           "화포", "성리학 서원", "첨성대", "석굴암", "팔만대장경", "직지심체요절", "경복궁", "수원 화성",
           "한산도 대첩", "독립선언서", "태극기", "애국가", "한글 맞춤법", "국립공원", "고속철도", "반도체 공장",
           "인공위성", "원자력 발전소", "지하철 노선", "올림픽 경기장", "세계문화유산 목록", "기념우표", "화폐",
           "헌법 개정안", "천문 관측소", "자격루", "앙부일구", "금속활자", "백자", "청자", "탑", "다리"]
VERBS = ["창제한", "만든", "지은", "발명한", "편찬한", "건설한", "세운", "완성한", "발표한", "설립한", "발견한",
         "복원한", "개발한", "출간한", "제작한", "보수한", "이전한", "공개한", "지정한", "도입한", "승인한", "폐지한"]
ASKED = [("연도", "언제"), ("해", "언제"), ("시기", "언제"), ("날짜", "언제"), ("장소", "어디"), ("곳", "어디"),
         ("도시", "어디"), ("지역", "어디"), ("이유", "무엇"), ("목적", "무엇"), ("방법", "무엇"), ("재료", "무엇"),
         ("인물", "누구"), ("사람", "누구"), ("책임자", "누구"), ("기관", "어디"), ("이름", "무엇"), ("규모", "얼마"), ("비용", "얼마")]
ENDINGS = ["인가요?", "인가?", "입니까?", "일까요?", "였나요?"]
WHEN = ["1443년에", "1592년에", "1910년에", "1950년에", "1988년에", "2003년에", "조선 시대에", "고려 말에", "전쟁 중에",
        "일제강점기에"]
HOW = ["한양에서", "경주에서", "평양에서", "제주에서", "국가의 지원으로", "백성을 위해", "외국의 도움으로", "처음부터 끝까지"]
MODIFIERS = WHEN + HOW
ADVERBS = ["처음", "가장 먼저", "공식적으로", "최초로", "주로", "당시", "실제로", "다시", "마침내", "직접"]
PARTICLES = {"이": "은", "가": "는", "은": "이", "는": "가", "을": "를", "를": "을", "에": "에서", "에서": "에", "의": "에서의"}
GENERAL = ["다음 문장을 영어로 번역하세요.", "이 글의 주제를 한 문장으로 요약해 주세요.", "파이썬으로 리스트를 정렬하는 방법을 알려 주세요.",
           "고객에게 보낼 사과 이메일을 정중하게 써 주세요.", "오늘 저녁 메뉴로 무엇이 좋을까요?", "주말에 가볼 만한 서울 근교 여행지를 추천해 주세요.",
           "다음 코드의 오류를 찾아 고쳐 주세요.", "환불 절차를 단계별로 설명해 주세요.", "회의록을 표 형식으로 정리해 주세요.",
           "이 제품의 장점과 단점을 비교해 주세요.", "초등학생에게 광합성을 쉽게 설명해 주세요.", "면접에서 자주 나오는 질문을 다섯 개 알려 주세요.",
           "운동을 꾸준히 하는 요령은 무엇인가요?", "배송 조회는 어디에서 할 수 있나요?", "비밀번호를 바꾸려면 어떻게 해야 하나요?",
           "이 시의 분위기를 설명해 주세요.", "다음 수식을 풀이 과정과 함께 계산하세요.", "한국의 사계절을 소개하는 글을 써 주세요."]
# (eval question, the same question with one word edited), written by hand; the first is the issue's.
HANDWRITTEN = [
    ("세포에서 에너지를 생산하는 세포 소기관은 무엇인가요?", "세포에서 에너지를 생산하는 세포 소기관은 어디인가요?"),
    ("임진왜란 때 거북선을 만든 장군은 누구인가요?", "임진왜란 때 거북선을 만든 사람은 누구인가요?"),
    ("1989년 6월 30일 평양축전에 대표로 파견된 인물은?", "1989년 6월 30일 평양축전에 대표로 보내진 인물은?"),
    ("대한민국 임시정부가 처음 수립된 도시는 어디인가?", "대한민국 임시정부가 처음 세워진 도시는 어디인가?"),
    ("한라산 정상에 있는 화구호의 이름은 무엇인가?", "한라산 꼭대기에 있는 화구호의 이름은 무엇인가?"),
    ("판소리에서 소리꾼의 장단을 맞추는 사람은 누구인가?", "판소리에서 소리꾼의 장단을 맞추는 연주자는 누구인가?"),
    ("광합성이 일어나는 식물 세포의 기관은 무엇인가요?", "광합성이 일어나는 식물 세포의 기관은 어디인가요?"),
    ("조선의 수도를 한양으로 옮긴 왕은 누구인가?", "조선의 수도를 한양으로 옮긴 임금은 누구인가?"),
    ("직지심체요절이 인쇄된 절의 이름은 무엇인가요?", "직지심체요절이 간행된 절의 이름은 무엇인가요?"),
    ("세계 최초의 금속활자본으로 인정받은 책은 무엇인가?", "세계 최초의 금속활자본으로 공인된 책은 무엇인가?"),
    ("첨성대가 세워진 시대는 언제인가요?", "첨성대가 세워진 시대는 언제입니까?"),
    ("훈민정음 해례본이 발견된 해는 언제인가?", "훈민정음 해례본이 발견된 연도는 언제인가?"),
    ("유관순이 만세 운동을 벌인 장소는 어디인가요?", "유관순이 만세 운동을 벌인 곳은 어디인가요?"),
    ("대동여지도를 제작한 사람은 누구인가?", "대동여지도를 만든 사람은 누구인가?"),
    ("한국 전쟁이 시작된 날짜는 언제인가요?", "한국 전쟁이 일어난 날짜는 언제인가요?"),
    ("독도를 관할하는 지방자치단체는 어디인가요?", "독도를 관리하는 지방자치단체는 어디인가요?"),
    ("석굴암 본존불이 바라보는 방향은 어느 쪽인가?", "석굴암 본존불이 향하는 방향은 어느 쪽인가?"),
    ("고려청자의 푸른빛을 내는 성분은 무엇인가요?", "고려청자의 푸른색을 내는 성분은 무엇인가요?"),
    ("서울 지하철 1호선이 개통된 해는?", "서울 지하철 1호선이 개통한 해는?"),
    ("삼국사기를 편찬한 인물은 누구인가요?", "삼국사기를 쓴 인물은 누구인가요?"),
]


def halves(pool: list, part: int) -> list:
    return pool[part::2]


def question(rng: random.Random, part: int) -> list[tuple[str, str]]:
    """A question as (kind, word) pairs: subject, object, verb, asked noun, ending; maybe a modifier or two."""
    subject, obj = rng.choice(halves(SUBJECTS, part)), rng.choice(halves(OBJECTS, part))
    noun, wh = rng.choice(ASKED)
    words = [("subject", subject + rng.choice(["이", "은"] if _batchim(subject) else ["가", "는"]))]
    for pool in rng.sample([WHEN, HOW], rng.choice([0, 0, 1, 1, 2])):  # at most one time, one place or manner
        words.append(("modifier", rng.choice(pool)))
    words.append(("object", obj + ("을" if _batchim(obj) else "를")))
    words.append(("verb", rng.choice(VERBS)))
    words.append(("noun", noun + ("은" if _batchim(noun) else "는")))
    if rng.random() < 0.25:
        words[-1] = ("noun", noun + ("은?" if _batchim(noun) else "는?"))
    else:
        words.append(("ending", wh + rng.choice(ENDINGS)))
    return words


def _batchim(word: str) -> bool:
    last = word.rstrip()[-1]
    return "가" <= last <= "힣" and (ord(last) - 0xAC00) % 28 != 0


def text(words: list[tuple[str, str]]) -> str:
    return " ".join(w for _, w in words)


def one_word_edit(rng: random.Random, words: list[tuple[str, str]], part: int) -> tuple[str, list[tuple[str, str]]]:
    """One word of the question changed: replaced by another of its kind, its particle changed, one put in, or
    one taken out."""
    kinds = ["replace", "replace", "particle", "insert"] + (["delete"] if any(k == "modifier" for k, _ in words) else [])
    how = rng.choice(kinds)
    out = list(words)
    if how == "insert":
        at = rng.randrange(1, len(out))
        out.insert(at, ("adverb", rng.choice(ADVERBS)))
        return how, out
    if how == "delete":
        at = rng.choice([i for i, (k, _) in enumerate(out) if k == "modifier"])
        del out[at]
        return how, out
    if how == "particle":
        at = rng.choice([i for i, (k, w) in enumerate(out) if k in ("subject", "object", "noun") and w[-1] in PARTICLES
                         or (k == "noun" and w.endswith("?"))])
        kind, word = out[at]
        tail = word.endswith("?")
        core = word.rstrip("?")
        for particle in sorted(PARTICLES, key=len, reverse=True):
            if core.endswith(particle):
                core = core[: -len(particle)] + PARTICLES[particle]
                break
        out[at] = (kind, core + ("?" if tail else ""))
        return how, out
    at = rng.randrange(len(out))
    kind, word = out[at]
    if kind == "ending":
        wh = word[:2]
        new = rng.choice([w for _, w in ASKED if w != wh] + [wh]) + rng.choice(ENDINGS)
        new = new if new != word else ("무엇" if wh != "무엇" else "어디") + word[2:]
    elif kind == "verb":
        new = rng.choice([v for v in VERBS if v != word])
    elif kind == "modifier":
        new = rng.choice([m for m in (WHEN if word in WHEN else HOW) if m != word])
    elif kind == "noun":  # another noun asked with the same word (연도 → 해 → 시기; 장소 → 곳)
        asked = next(wh for n, wh in ASKED if word.startswith(n))
        noun = rng.choice([n for n, wh in ASKED if wh == asked and not word.startswith(n)])
        new = noun + ("은" if _batchim(noun) else "는") + ("?" if word.endswith("?") else "")
    else:  # subject or object: another of the same kind, its particle fitted
        pool = halves(SUBJECTS if kind == "subject" else OBJECTS, part)
        other = rng.choice([p for p in pool if not word.startswith(p)])
        particle = ("이" if _batchim(other) else "가") if kind == "subject" else ("을" if _batchim(other) else "를")
        new = other + particle
    out[at] = (kind, new)
    return f"{kind} replaced", out


def within_one_word(a: str, b: str) -> bool:
    """True if b is a with at most one whole word replaced, put in or taken out."""
    x, y = a.split(), b.split()
    if len(x) == len(y):
        return sum(p != q for p, q in zip(x, y)) <= 1
    if abs(len(x) - len(y)) != 1:
        return False
    short, long_ = (x, y) if len(x) < len(y) else (y, x)
    i = next((k for k, (p, q) in enumerate(zip(short, long_)) if p != q), len(short))
    return short[i:] == long_[i + 1:]


def build(seed: int, part: int, n_eval: int, n_unrelated: int) -> dict[str, list[str]]:
    rng = random.Random(seed)
    evals: list[list[tuple[str, str]]] = []
    seen: set[str] = set()
    while len(evals) < n_eval:
        q = question(rng, part)
        if text(q) not in seen:
            seen.add(text(q))
            evals.append(q)
    one, kinds, two = [], [], []
    for q in evals:
        how, edited = one_word_edit(rng, q, part)
        if text(edited) != text(q):
            one.append(text(edited))
            kinds.append(how)
        _, twice = one_word_edit(rng, edited, part)
        if not within_one_word(text(q), text(twice)):
            two.append(text(twice))
    eval_texts = [text(q) for q in evals]
    unrelated: list[str] = []
    while len(unrelated) < n_unrelated:
        candidate = text(question(rng, part))
        if candidate in seen or any(within_one_word(e, candidate) for e in eval_texts):
            continue
        seen.add(candidate)
        unrelated.append(candidate)
    return {"eval": eval_texts, "one_word": one, "kinds": kinds, "two_words": two, "unrelated": unrelated,
            "general": list(GENERAL), "hand_eval": [a for a, _ in HANDWRITTEN], "hand_edit": [b for _, b in HANDWRITTEN]}


def best_coverage(rows: list[str], evals: list[str], ngram: int | None) -> list[float]:
    index = EvalIndex(files={"eval": {"items": 0, "rejected": 0, "found": 0}})
    for i, e in enumerate(evals):
        index.add(e, Locator("eval", i + 1), "eval", ngram)
    index.prune(20)
    out = []
    for row in rows:
        found = matches(row, index, 1e-9, 10**9)
        out.append(found.containment if found else 0.0)
    return out


def scores(data: dict[str, list[str]], ngram: int | None) -> dict[str, list[float]]:
    evals = data["eval"] + data["hand_eval"]
    return {name: best_coverage(data[name], evals, ngram)
            for name in ("one_word", "two_words", "unrelated", "general", "hand_edit")}


def at(s: dict[str, list[float]], t: float) -> dict[str, float]:
    caught = {k: sum(v >= t for v in vals) for k, vals in s.items()}
    tp, fp = caught["one_word"], caught["unrelated"] + caught["general"]
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / len(s["one_word"])
    return {"threshold": t, "recall_one_word": recall, "recall_hand": caught["hand_edit"] / len(s["hand_edit"]),
            "recall_two_words": caught["two_words"] / max(len(s["two_words"]), 1),
            "unrelated_flagged": caught["unrelated"] / len(s["unrelated"]),
            "general_flagged": caught["general"] / len(s["general"]), "precision": precision,
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ngram", type=int, default=None, help="n for all text (default: decontaminate's auto)")
    parser.add_argument("--eval", type=int, default=600, help="eval questions per set")
    parser.add_argument("--unrelated", type=int, default=3000, help="unrelated questions per set")
    parser.add_argument("--recall", type=float, default=0.95, help="recall on one-word edits to keep (tuning set)")
    args = parser.parse_args()
    tune = scores(build(1, 0, args.eval, args.unrelated), args.ngram)
    held_data = build(2, 1, args.eval, args.unrelated)
    held = scores(held_data, args.ngram)
    grid = [round(0.50 + 0.01 * i, 2) for i in range(46)]
    tuned = [at(tune, t) for t in grid]
    chosen = max(r["threshold"] for r in tuned if r["recall_one_word"] >= args.recall)
    best_f1 = max(tuned, key=lambda r: (round(r["f1"], 4), r["threshold"]))["threshold"]
    table = [at(held, t) for t in grid]
    print(f"n-gram: {args.ngram or 'auto'}; tuning set: {len(tune['one_word'])} one-word edits, "
          f"{len(tune['unrelated'])} unrelated questions; held out: {len(held['one_word'])} and "
          f"{len(held['unrelated'])}, {len(held['general'])} general rows, {len(held['hand_edit'])} handwritten edits")
    print(f"chosen on the tuning set (the highest with recall >= {args.recall:.0%} on one-word edits): {chosen}; "
          f"best F1 there: {best_f1}; the default in sftdata: {DEFAULT_THRESHOLD}")
    print("held out:  t     recall(1 word)  recall(hand)  recall(2 words)  unrelated flagged  general flagged  "
          "precision")
    for row in table:
        if round(row["threshold"] * 100) % 5 == 0 or row["threshold"] in (chosen, best_f1, DEFAULT_THRESHOLD):
            mark = "".join(label for label, t in ((" <- chosen", chosen), (" <- best F1", best_f1),
                                                  (" <- default", DEFAULT_THRESHOLD)) if row["threshold"] == t)
            print(f"          {row['threshold']:.2f}  {row['recall_one_word']:14.1%}  {row['recall_hand']:12.1%}  "
                  f"{row['recall_two_words']:15.1%}  {row['unrelated_flagged']:17.2%}  {row['general_flagged']:15.1%}  "
                  f"{row['precision']:9.1%}{mark}")
    kinds: dict[str, list[float]] = {}
    for kind, value in zip(held_data["kinds"], held["one_word"]):
        kinds.setdefault(kind, []).append(value)
    by_kind = {k: sum(v >= chosen for v in vals) / len(vals) for k, vals in sorted(kinds.items())}
    print(f"held out, recall at {chosen} by kind of edit: " + ", ".join(f"{k} {r:.0%}" for k, r in by_kind.items()))
    issue = best_coverage([HANDWRITTEN[0][1]], [HANDWRITTEN[0][0]], args.ngram)[0]
    print(f"the issue's pair (…무엇인가요? / …어디인가요?): covers {issue:.1%}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps({"ngram": args.ngram, "chosen": chosen, "best_f1": best_f1,
                                                  "tuning": tuned, "held_out": table, "held_out_by_kind": by_kind,
                                                  "issue_pair": issue}, indent=1))


if __name__ == "__main__":
    main()
