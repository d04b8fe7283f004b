"""sftdata dedup against datatrove's MinHash deduplication, and what exact verification costs sftdata.

    python bench/dedup_bench.py                                  # 100,000 rows, 3 rounds, every side
    python bench/dedup_bench.py --rows 1000000                   # 1M rows
    python bench/dedup_bench.py --sides exact,estimate           # without datatrove
    python bench/dedup_bench.py --baseline /tmp/old              # also a checkout of sftdata before this change

datatrove is not a dependency of sftdata: `pip install datatrove` (0.10.1 was measured; it brings loguru and
humanize). Its English word tokenizer needs spaCy and its Korean one kiwipiepy (whose 0.24 release no longer
ships the "sbg" model datatrove 0.10.1 asks for), so the datatrove side splits words on whitespace, the
fastest tokenizer it could have, and hashes a word n-gram's UTF-8 bytes with xxhash (xxhash 4 refuses the str
datatrove 0.10.1 passes it); everything else is its default (MinhashConfig(): word 5-grams, 14 buckets
of 8 hashes, 64-bit xxhash) run as its own four stages (signatures, buckets, clusters, filter) on its
LocalPipelineExecutor, with the tasks its MinHash example uses (1, 14 buckets, 1, 1) and as many workers
as this machine has CPUs. sftdata reads records; datatrove reads the same text as {"text", "id"} documents.

The input is generated (seeded): rows of random Hangul words (a question of 8-16 words, an answer of
12-40), and planted near duplicates: about one row in ten is a copy of an earlier row, exact (a sixth of
them), spaced or punctuated differently (NFKC folds it: another sixth), or with 1 to 16 words replaced,
which spreads their exact Jaccard similarity from about 0.4 to 0.95 across the 0.7 threshold. A planted pair
is a true duplicate when the exact Jaccard of its shingle sets (sftdata's definition, computed here by an
independent oracle: NFKC, casefold, whitespace collapsed, character 3-grams as sets of strings) is at least
the threshold. Unplanted rows are unrelated (random words: similarity near 0).

Sides, each a whole separate process, alternating order round by round, medians of the rounds:
  exact      this checkout's `sftdata.curate.dedup.dedup` (candidates from MinHash LSH, each pair decided on
             the exact Jaccard of its shingle sets: the default)
  estimate   the same with check="estimate" (candidates decided on the 128 b-bit signature estimate, as
             before; the texts still go to the temporary file, so this isolates the verification itself)
  baseline   with --baseline DIR: that checkout's dedup (e.g. `git archive HEAD` of the commit before)
  datatrove  datatrove's pipeline above
All sftdata sides compare the fields instruction, input and output (the exchange of these records).
Measured per run: wall, CPU (user + system of the process and every process it waited for), peak RSS (the
largest single process), rows per CPU-second; from the outputs: rows dropped, precision (dropped rows that
are one side of a true duplicate pair whose other side was kept / rows dropped), recall (true duplicate pairs
with exactly one side dropped / true duplicate pairs), and for sftdata the drops whose exact Jaccard with the
row they name is below the threshold. Results go to bench/out/dedup/results.json (results-records.json with
--records).
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.shingle_oracle import grams

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out" / "dedup"
FIELDS = ["instruction", "input", "output"]
SFTDATA = ("import sys; from sftdata.curate.dedup import dedup; "
           "kw = {} if sys.argv[3] == 'default' else {'check': sys.argv[3]}; "
           "r = dedup([sys.argv[1]], sys.argv[2], fields=['instruction', 'input', 'output'], **kw); "
           "print(r.summary()['deduplicated'])")


# ---- the input and the oracle --------------------------------------------------------------------------------

def generate(rows: int, seed: int) -> tuple[list[str], list[tuple[int, int, str]]]:
    """Compared texts (question + "\\n" + answer) and the planted pairs (earlier row, copy, how it was made)."""
    rng = random.Random(seed)
    words = ["".join(chr(rng.randrange(0xAC00, 0xD7A4)) for _ in range(rng.choice((1, 2, 2, 2, 3))))
             for _ in range(400)]
    weights = [1 / rank for rank in range(1, len(words) + 1)]  # Zipf: common words, so many LSH candidates
    texts: list[str] = []
    pairs: list[tuple[int, int, str]] = []
    free: list[int] = []  # rows without a copy yet
    for i in range(rows):
        if free and rng.random() < 0.1:
            source = free.pop(rng.randrange(len(free)))
            kind = rng.random()
            if kind < 1 / 6:
                text, how = texts[source], "exact"
            elif kind < 2 / 6:
                text, how = texts[source].replace(" ", "  ", 2).replace("?", "？"), "spacing"
            else:
                question, answer = (part.split(" ") for part in texts[source].split("\n"))
                edits = rng.randint(1, 16)
                for _ in range(edits):
                    part = question if rng.random() < 0.35 else answer
                    part[rng.randrange(len(part))] = rng.choice(words)
                text, how = " ".join(question) + "\n" + " ".join(answer), f"{edits} words"
            pairs.append((source, i, how))
        else:
            text = (" ".join(rng.choices(words, weights, k=rng.randint(8, 16))) + "?\n"
                    + " ".join(rng.choices(words, weights, k=rng.randint(12, 40))) + ".")
            free.append(i)
        texts.append(text)
    return texts, pairs


def jaccard(a: str, b: str) -> float:
    x, y = grams(a), grams(b)
    return len(x & y) / len(x | y)


def write_inputs(rows: int, seed: int, threshold: float) -> dict:
    (OUT / "docs").mkdir(parents=True, exist_ok=True)
    texts, pairs = generate(rows, seed)
    with open(OUT / "rows.jsonl", "w", encoding="utf-8") as records, \
            open(OUT / "docs" / "docs.jsonl", "w", encoding="utf-8") as docs:
        for i, text in enumerate(texts):
            question, answer = text.split("\n")
            records.write(json.dumps({"instruction": question, "output": answer}, ensure_ascii=False) + "\n")
            docs.write(json.dumps({"text": text, "id": str(i)}, ensure_ascii=False) + "\n")
    truth = [(a, b, how, jaccard(texts[a], texts[b])) for a, b, how in pairs]
    return {"texts": texts, "pairs": truth, "true": [(a, b) for a, b, _, j in truth if j >= threshold]}


# ---- running and measuring one side ----------------------------------------------------------------------------

def measured(args: list[str], cwd: Path) -> dict:
    """Run a command as a child of a small wrapper process; its wall, CPU and peak RSS."""
    report = OUT / "measure.json"
    done = subprocess.run([sys.executable, __file__, "--measure", str(report), "--", *args], cwd=cwd,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{args[:4]} failed:\n{done.stderr[-3000:]}")
    return {**json.loads(report.read_text()), "stdout": done.stdout}


def read_records(path: Path) -> dict:
    """The compared text (instruction, input, output joined by newlines, empty ones left out) of each row."""
    texts = []
    with open(path, "rb") as handle:
        for line in handle:
            row = json.loads(line)
            texts.append("\n".join(row[k] for k in FIELDS if isinstance(row.get(k), str) and row[k]))
    return {"texts": texts, "pairs": [], "true": None}


def _measure(report: str, args: list[str]) -> None:
    """The wrapper: made a child subreaper (Linux), so processes its child leaves behind (datatrove's forkserver
    and the pool workers it forked) are reaped here too and their CPU and RSS counted."""
    import ctypes

    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    started = time.perf_counter()
    code = subprocess.call(args)
    while True:
        try:
            os.wait()
        except ChildProcessError:
            break
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    Path(report).write_text(json.dumps({"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
                                        "peak_mib": usage.ru_maxrss / 1024}))
    sys.exit(code)


def run_sftdata(side: str, baseline: str | None, records: Path) -> tuple[dict, set[int], list[tuple[int, int, float]]]:
    out = OUT / f"{side}.jsonl"
    env_path = baseline if side == "baseline" else str(ROOT)
    check = {"exact": "default", "estimate": "estimate", "baseline": "default"}[side]
    figures = measured(["env", f"PYTHONPATH={env_path}", sys.executable, "-c", SFTDATA, str(records), str(out),
                        check], cwd=Path("/tmp"))
    dropped, named = set(), []
    with open(OUT / f"{side}.dupes.jsonl", "rb") as handle:
        for line in handle:
            row = json.loads(line)
            dropped.add(row["line"] - 1)
            named.append((row["line"] - 1, row["duplicate_of"]["line"] - 1, row["similarity"]))
    return figures, dropped, named


def run_datatrove(rows: int) -> tuple[dict, set[int], list]:
    work = OUT / "datatrove"
    subprocess.run(["rm", "-rf", str(work)], check=True)
    figures = measured([sys.executable, __file__, "--datatrove-run", str(OUT / "docs"), str(work)], cwd=OUT)
    kept = set()
    for path in sorted((work / "output").glob("*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as handle:
            kept.update(int(json.loads(line)["id"]) for line in handle)
    return figures, set(range(rows)) - kept, []


def datatrove_run(docs: str, work: str) -> None:
    """datatrove's four MinHash stages on its local executor (see the module docstring)."""
    from datatrove.executor.local import LocalPipelineExecutor
    from datatrove.pipeline.dedup import (
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers.jsonl import JsonlWriter
    from datatrove.utils.word_tokenizers import WordTokenizer

    class Whitespace(WordTokenizer):
        def word_tokenize(self, text: str) -> list[str]:
            return text.split()

        def sent_tokenize(self, text: str) -> list[str]:
            return [text]

        def span_tokenize(self, text: str) -> list[tuple[int, int]]:
            return [(0, len(text))]

    import xxhash
    from datatrove.utils.hashes import xxhash as hashes

    # xxhash 4 no longer hashes str, which datatrove 0.10.1 passes: hash its UTF-8 bytes, as xxhash 3 did
    hashes.xxhash64 = lambda text: xxhash.xxh64_intdigest(text.encode())  # type: ignore[assignment]
    hashes.xxhash32 = lambda text: xxhash.xxh32_intdigest(text.encode())  # type: ignore[assignment]
    config = MinhashConfig()
    workers = os.cpu_count() or 1
    stage1 = LocalPipelineExecutor([JsonlReader(docs), MinhashDedupSignature(f"{work}/signatures", config=config,
                                                                             language=Whitespace())],
                                   tasks=1, logging_dir=f"{work}/logs/1")
    stage2 = LocalPipelineExecutor([MinhashDedupBuckets(f"{work}/signatures", f"{work}/buckets", config=config)],
                                   tasks=config.num_buckets, workers=workers, logging_dir=f"{work}/logs/2",
                                   depends=stage1)
    stage3 = LocalPipelineExecutor([MinhashDedupCluster(f"{work}/buckets", f"{work}/remove_ids", config=config)],
                                   tasks=1, logging_dir=f"{work}/logs/3", depends=stage2)
    stage4 = LocalPipelineExecutor([JsonlReader(docs), MinhashDedupFilter(f"{work}/remove_ids"),
                                    JsonlWriter(f"{work}/output")], tasks=1, logging_dir=f"{work}/logs/4",
                                   depends=stage3)
    stage4.run()


# ---- scoring -------------------------------------------------------------------------------------------------

def score(dropped: set[int], named: list[tuple[int, int, float]], data: dict, threshold: float) -> dict:
    known = data["true"] is not None  # --records: no planted pairs, only the dropped rows' exact similarity
    found = sum(1 for a, b in data["true"] if (a in dropped) != (b in dropped)) if known else 0
    below = [(row, target, similarity, jaccard(data["texts"][row], data["texts"][target]))
             for row, target, similarity in named]
    wrong_similarity = sum(1 for _, _, s, j in below if s != j)
    below = [b for b in below if b[3] < threshold]
    return {"dropped": len(dropped), "precision": (found / len(dropped) if dropped else 1.0) if known else None,
            "recall": (found / len(data["true"]) if data["true"] else 1.0) if known else None,
            "dropped_below_threshold": len(below) if named else None,
            "lowest_dropped_jaccard": round(min(b[3] for b in below), 3) if below else None,
            "similarity_not_exact": wrong_similarity if named else None}


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sides", default="exact,estimate,datatrove")  # and baseline, with --baseline
    parser.add_argument("--baseline", help="a checkout of sftdata to run as the 'baseline' side")
    parser.add_argument("--threshold", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--records", type=Path, help="an existing records file instead (sftdata sides only; no "
                        "planted pairs: precision and recall are not known, drops below the threshold are)")
    args = parser.parse_args()
    sides = [s for s in args.sides.split(",") if s] + (["baseline"] if args.baseline else [])
    started = time.perf_counter()
    if args.records:
        sides = [s for s in sides if s != "datatrove"]
        data = read_records(args.records)
        args.rows = len(data["texts"])
        records = args.records
        print(f"{args.rows:,} rows of {args.records}; load {os.getloadavg()[0]:.1f}", flush=True)
    else:
        data = write_inputs(args.rows, args.seed, args.threshold)
        records = OUT / "rows.jsonl"
        hows = {}
        for _, _, how, j in data["pairs"]:
            key = how if how in ("exact", "spacing") else "edited"
            hows.setdefault(key, []).append(j)
        print(f"{args.rows:,} rows, {len(data['pairs']):,} planted pairs, {len(data['true']):,} at exact Jaccard >= "
              f"{args.threshold}; " + ", ".join(f"{k} {len(v):,} (J {min(v):.2f}-{max(v):.2f})"
                                                for k, v in hows.items())
              + f"; generated in {time.perf_counter() - started:.0f} s; load {os.getloadavg()[0]:.1f}", flush=True)
    runs: dict[str, list[dict]] = {side: [] for side in sides}
    for round_ in range(args.rounds):
        order = sides[round_ % len(sides):] + sides[:round_ % len(sides)]
        for side in order:
            if side == "datatrove":
                figures, dropped, named = run_datatrove(args.rows)
            else:
                figures, dropped, named = run_sftdata(side, args.baseline, records)
            figures.pop("stdout", None)
            run = {**figures, **score(dropped, named, data, args.threshold)}
            runs[side].append(run)
            print(f"round {round_ + 1} {side:9} wall {run['wall_s']:6.1f} s  CPU {run['cpu_s']:6.1f} s  "
                  f"peak {run['peak_mib']:5.0f} MiB  dropped {run['dropped']:,}  precision {_f(run['precision'])}  "
                  f"recall {_f(run['recall'])}  below threshold {run['dropped_below_threshold']}", flush=True)
    medians = {side: {k: statistics.median(r[k] for r in rs) for k in ("wall_s", "cpu_s", "peak_mib")}
               | {k: v for k, v in rs[0].items() if k not in ("wall_s", "cpu_s", "peak_mib")}
               for side, rs in runs.items()}
    for m in medians.values():
        m["rows_per_cpu_s"] = args.rows / m["cpu_s"]
    print(f"\nmedians of {args.rounds} ({args.rows:,} rows; load {os.getloadavg()[0]:.1f}):")
    print("| side | wall | CPU | peak RSS | rows per CPU-s | dropped | precision | recall | drops below threshold |")
    print("|---|---|---|---|---|---|---|---|---|")
    for side, m in medians.items():
        below = "-" if m["dropped_below_threshold"] is None else f"{m['dropped_below_threshold']:,}"
        print(f"| {side} | {m['wall_s']:.1f} s | {m['cpu_s']:.1f} s | {m['peak_mib']:.0f} MiB | "
              f"{m['rows_per_cpu_s']:,.0f} | {m['dropped']:,} | {_f(m['precision'])} | {_f(m['recall'])} | {below} |")
    ratios = {}
    for other in ("estimate", "baseline"):
        if "exact" in medians and other in medians:
            ratios[f"exact_cpu_over_{other}"] = medians["exact"]["cpu_s"] / medians[other]["cpu_s"]
            ratios[f"exact_wall_over_{other}"] = medians["exact"]["wall_s"] / medians[other]["wall_s"]
    if "exact" in medians and "datatrove" in medians:
        ratios["exact_rows_per_cpu_s_over_datatrove"] = medians["exact"]["rows_per_cpu_s"] / \
            medians["datatrove"]["rows_per_cpu_s"]
    for k, v in ratios.items():
        print(f"{k}: {v:.3f}")
    results = {"rows": args.rows, "rounds": args.rounds, "runs": runs, "medians": medians, "ratios": ratios}
    (OUT / ("results-records.json" if args.records else "results.json")).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[1] == "--measure":
        _measure(sys.argv[2], sys.argv[4:])
    elif len(sys.argv) == 4 and sys.argv[1] == "--datatrove-run":
        datatrove_run(sys.argv[2], sys.argv[3])
    else:
        main()
