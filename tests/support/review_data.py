"""The data the review tests open: a Korean chat file with reasoning turns, an exact and a near duplicate, an
invalid row and rows holding script and HTML payloads in every field; run through dedup so that its rejects and
dupes files lie beside the kept rows, as a team's output chain would."""
from __future__ import annotations

import json
from pathlib import Path

PAYLOADS = ['<script>window.__pwned = 1</script>', '<img src=x onerror="window.__pwned = 1">',
            '"><svg onload="window.__pwned=1">', "{{ 7*7 }} {% raw %}pwned{% endraw %}"]
QUESTIONS = ["서울의 봄 날씨는 어떤가요?", "김치찌개를 맛있게 끓이는 방법을 알려주세요.", "파이썬에서 리스트를 정렬하는 방법은?",
             "한국의 전통 명절에는 무엇이 있나요?", "지하철에서 환승하는 방법을 설명해 주세요."]


def korean_rows() -> list[dict]:
    rows = []
    for i, question in enumerate(QUESTIONS):
        rows.append({"messages": [
            {"role": "system", "content": "당신은 친절한 한국어 도우미입니다."},
            {"role": "user", "content": question},
            {"role": "assistant", "reasoning_content": f"사용자가 '{question}'라고 물었다. 핵심만 차근차근 정리해 보자.",
             "content": f"{i + 1}번 답변입니다. {question.rstrip('?')}에 대해 자세히 설명하겠습니다. 먼저 기본 개념부터 "
                        "살펴보고, 그다음 예시를 들어 보겠습니다."}]})
    return rows


def hostile_rows() -> list[dict]:
    out = []
    for payload in PAYLOADS:
        out.append({"messages": [{"role": "system", "content": payload}, {"role": "user", "content": payload + " 질문"},
                                 {"role": "assistant", "reasoning_content": payload, "content": payload + " 답"}],
                    "meta": {payload: payload}})
    return out


def write_chain(folder: Path) -> dict[str, Path]:
    """raw.jsonl → dedup → kept.jsonl (+ .rejects.jsonl with one invalid row, .dupes.jsonl with the duplicates)."""
    import sftdata

    rows = korean_rows()
    near = json.loads(json.dumps(rows[1], ensure_ascii=False))
    near["messages"][2]["content"] += " 감사합니다."
    lines = [json.dumps(r, ensure_ascii=False) for r in [*rows, rows[0], near, *hostile_rows()]]
    lines.insert(3, json.dumps({"messages": [{"role": "user", "content": "답이 없는 질문"}]}, ensure_ascii=False))
    raw = folder / "raw.jsonl"
    raw.write_text("\n".join(lines) + "\n", encoding="utf-8")
    kept = folder / "kept.jsonl"
    sftdata.dedup([raw], kept)
    return {"raw": raw, "kept": kept, "rejects": folder / "kept.rejects.jsonl", "dupes": folder / "kept.dupes.jsonl"}
