"""`sftdata scrub`: detection quality per PII type, and what scrubbing costs next to copying the rows.

    python bench/pii_bench.py                         # quality on 2 corpora + 200k-row throughput, 3 rounds
    python bench/pii_bench.py --holdout FILE.jsonl    # also another labelled file {"text", "labels": [{"type", "value"}]}
    python bench/pii_bench.py --rows 20000 --rounds 1

Quality: precision and recall per type on tests/support/pii_corpus.py's labelled corpus (seeded; check digits
computed by the published rules; hard negatives beside the positives), at the default confidence
(`high`) and at `--min-confidence low`; and on tests/data/pii_holdout_{a,b}.jsonl, 600 lines each written
by sessions that had seen neither the patterns nor that corpus (and on `--holdout`, when given). A label is found when a hit of its type covers it; a hit is right when it covers a
label of its type. Targets (issue 16): recall >= 0.99 on rrn, frn, brn, card; precision >= 0.95 overall.

Throughput: the same corpus as customer-service records (N rows, one sentence of the corpus per turn),
`sftdata scrub` against the baseline `sftdata filter` with no filter (read, validate, write: the cost of
any pass over the data), each a whole process, alternating; medians of wall time and rows/s. Results go to
bench/out/pii/results.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from sftdata.curate.pii import find  # noqa: E402
from support.pii_corpus import Sample, corpus, score  # noqa: E402

OUT = HERE / "out" / "pii"


def quality(samples: list[Sample]) -> dict[str, dict[str, dict[str, float]]]:
    return {"high": score(samples, lambda t: [h for h in find(t) if h.confidence == "high"]),
            "low": score(samples, find)}


def holdout(path: Path) -> list[Sample]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        out.append(Sample(row["text"], [(lab["type"], lab["value"]) for lab in row.get("labels", [])]))
    return out


def records(n: int, path: Path) -> None:
    texts = [s.text for s in corpus(n // 30 + 1, seed=1)]
    with path.open("w", encoding="utf-8") as handle:
        for i in range(n):
            a, b = texts[(2 * i) % len(texts)], texts[(2 * i + 1) % len(texts)]
            handle.write(json.dumps({"messages": [{"role": "user", "content": f"문의 {i}: {a}"},
                                                  {"role": "assistant", "content": b}]}, ensure_ascii=False) + "\n")


def run(command: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "sftdata.cli", *command, "--json"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed: {done.stderr[-2000:]}")
    return time.perf_counter() - started


def show(name: str, result: dict[str, dict[str, dict[str, float]]]) -> None:
    print(f"\n{name}: type, precision / recall (labels) at --min-confidence high | low")
    for kind, high in result["high"].items():
        low = result["low"][kind]
        print(f"  {kind:15} {high['precision']:.3f} / {high['recall']:.3f} ({high['labels']:>5}) | "
              f"{low['precision']:.3f} / {low['recall']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--holdout", type=Path)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    results: dict = {"quality": {"corpus": quality(corpus(300, seed=11))}}
    show("tests/support/pii_corpus.py (seed 11, 300 rounds)", results["quality"]["corpus"])
    for path in [*sorted((HERE.parent / "tests" / "data").glob("pii_holdout_*.jsonl")), *([args.holdout] if args.holdout else [])]:
        results["quality"][path.name] = quality(holdout(path))
        show(f"holdout {path.name} (written blind to the patterns)", results["quality"][path.name])
    data = OUT / "records.jsonl"
    records(args.rows, data)
    sides = {"filter (baseline)": ["filter", str(data), "-o", str(OUT / "filtered.jsonl")],
             "scrub": ["scrub", str(data), "-o", str(OUT / "scrubbed.jsonl")]}
    times: dict[str, list[float]] = {k: [] for k in sides}
    for round_ in range(args.rounds):
        order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
        for name in order:
            times[name].append(run(sides[name]))
    print(f"\nthroughput on {args.rows:,} chat records ({args.rounds} rounds, alternating, medians):")
    base = statistics.median(times["filter (baseline)"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:18} {median:7.1f} s  {args.rows / median:9,.0f} rows/s  ({median / base:.2f}x baseline)")
    results["throughput"] = {"rows": args.rows, "seconds": times}
    (OUT / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
