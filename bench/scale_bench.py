"""`sftdata convert` (or `dedup`) on one process against `--engine ray` and `--engine spark` (2 CPUs), alternating.

    python bench/scale_bench.py                        # convert, 1,000,000 records, 3 rounds
    python bench/scale_bench.py --records 100000 --rounds 1 --split-mib 16
    python bench/scale_bench.py --command dedup        # dedup of the converted records
    python bench/scale_bench.py --format csv           # convert a CSV export of the same rows
    python bench/scale_bench.py --format parquet       # ... or the same rows as Parquet (row groups of 50,000)

For dedup the input is the local convert's records file (convert's sides run first, once, when it is
missing) and the sides are `sftdata dedup` locally, its split path with no engine, and `--engine ray` /
`--engine spark`; kept rows, dupes and rejects are checked byte for byte, and the run's _meta.json gives
the bytes shuffled and the candidate and verified pairs.

The input is load_bench.py's generated file (seeded; Korean and English rows, ~0.1% broken lines), or with
`--format csv` its rows written as CSV by polars (instruction, input, output; quoted cells hold the rows'
line ends, so the CSV split planner's two-way survey is measured too). Sides,
each one whole process, alternating: `local` (`sftdata convert --preset alpaca`: for a JSONL file over
1 MiB, the columnar path), `splits` (the same splits and per-split code as Ray, run one after another in
one process with no engine: the per-row cost of the split path itself), and `ray` (`--engine ray
--concat` on a local 2-CPU cluster, whose start-up is part of its wall time) and `spark` (`--engine spark
--address local[2] --concat`: a JVM and two Python workers, start-up included). Per side: wall time, CPU
seconds per 1k rows and the peak RSS of the largest process, both sampled every 0.1 s over the whole
process tree with psutil (Ray's GCS, raylet and workers included; CPU of each process as last seen, so
a process's final 0.1 s may be missed). The outputs are checked byte for byte against the local file.
Results go to bench/out/dist/results.json.
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
OUT = HERE / "out" / "dist"
DEDUP_SPLITS = ("import sys; from sftdata.scale.dedup import dedup; "
                "dedup([sys.argv[1]], sys.argv[2], engine='local', split_mib=float(sys.argv[3]), concat=True)")
SPLITS = ("import sys; from sftdata.api.scaled import on_engine; "
          "on_engine('convert', [sys.argv[1]], sys.argv[2], 'local', None, float(sys.argv[3]), True, "
          "dict(preset='alpaca'))")


def run(name: str, command: list[str]) -> dict[str, float]:
    import psutil

    cpu: dict[int, float] = {}
    peak = 0
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        for member in tree:
            try:
                times, rss = member.cpu_times(), member.memory_info().rss
            except psutil.Error:
                continue
            cpu[member.pid] = times.user + times.system
            peak = max(peak, rss)
        time.sleep(0.1)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed: {proc.stderr.read().decode()[-3000:] if proc.stderr else ''}")
    return {"wall_s": wall, "cpu_s": sum(cpu.values()), "peak_mib": peak / (1 << 20)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--split-mib", type=float, default=32)
    parser.add_argument("--command", choices=("convert", "dedup"), default="convert")
    parser.add_argument("--format", choices=("jsonl", "csv", "parquet"), default="jsonl")
    args = parser.parse_args()
    raw = generated(OUT, args.records)
    if args.format != "jsonl":
        raw = as_csv(raw) if args.format == "csv" else as_parquet(raw)
    cli = [sys.executable, "-m", "sftdata.cli"]
    if args.command == "dedup":
        return bench_dedup(args, raw, cli)
    sides = {"local": [*cli, "convert", str(raw), "-o", str(OUT / "local.jsonl"), "--preset", "alpaca"],
             "splits": [sys.executable, "-c", SPLITS, str(raw), str(OUT / "splits"), str(args.split_mib)],
             "ray": [*cli, "convert", str(raw), "-o", str(OUT / "ray"), "--preset", "alpaca", "--engine", "ray",
                     "--split-mib", str(args.split_mib), "--concat"],
             "spark": [*cli, "convert", str(raw), "-o", str(OUT / "spark"), "--preset", "alpaca", "--engine", "spark",
                       "--address", "local[2]", "--split-mib", str(args.split_mib), "--concat"]}
    results = alternate(sides, args.rounds)
    local = (OUT / "local.jsonl").read_bytes()
    same = all(local == (OUT / f"{name}.jsonl").read_bytes() for name in ("ray", "spark", "splits"))
    report(results, args.records, args.rounds, same, OUT / f"results{'' if args.format == 'jsonl' else '-' + args.format}.json")


def generated(folder: Path, records: int) -> Path:
    """load_bench.py's generated file of `records` rows in `folder` (made once)."""
    folder.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(HERE))
    from load_bench import generate

    raw = folder / f"raw-{records}.jsonl"
    if not raw.is_file():
        generate(raw, records)
    return raw


def as_parquet(raw: Path, group_rows: int = 50_000) -> Path:
    """The CSV export's rows as Parquet, in row groups of `group_rows` (what a split is cut at)."""
    import polars as pl

    path = raw.with_suffix(".parquet")
    if not path.is_file():
        pl.read_csv(as_csv(raw), infer_schema=False).write_parquet(path, row_group_size=group_rows)
    return path


def as_csv(raw: Path) -> Path:
    """The generated rows as a CSV export (the broken lines left out: CSV has no such thing); every tenth
    answer holds a line break, as exported multi-line cells do."""
    import orjson
    import polars as pl

    path = raw.with_suffix(".csv")
    if not path.is_file():
        rows = []
        for line in raw.read_bytes().splitlines():
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            cells = {k: str(row.get(k, "")) for k in ("instruction", "input", "output")}
            if len(rows) % 10 == 0:
                cells["output"] = cells["output"].replace(" ", "\n", 1)
            rows.append(cells)
        pl.DataFrame(rows).write_csv(path)
    return path


def alternate(sides: dict[str, list[str]], rounds: int) -> dict[str, list[dict[str, float]]]:
    results: dict[str, list[dict[str, float]]] = {k: [] for k in sides}
    for round_ in range(rounds):
        for name in (list(sides) if round_ % 2 == 0 else list(reversed(sides))):
            figures = run(name, sides[name])
            results[name].append(figures)
            print(f"round {round_ + 1} {name}: {figures['wall_s']:.1f} s wall, {figures['cpu_s']:.1f} s CPU, "
                  f"{figures['peak_mib']:.0f} MiB peak", flush=True)
    return results


def report(results: dict[str, list[dict[str, float]]], records: int, rounds: int, same: bool, path: Path,
           **extra: object) -> None:
    print(f"\n{records:,} records, {rounds} rounds, medians; outputs identical: {same}")
    for name, runs in results.items():
        wall = statistics.median(r["wall_s"] for r in runs)
        cpu = statistics.median(r["cpu_s"] for r in runs)
        peak = statistics.median(r["peak_mib"] for r in runs)
        print(f"  {name:6} {wall:7.1f} s wall  {cpu / records * 1000:6.3f} CPU s per 1k rows  {peak:6.0f} MiB peak")
    path.write_text(json.dumps({"records": records, "identical": same, "runs": results, **extra}, indent=1),
                    encoding="utf-8")


def bench_dedup(args: argparse.Namespace, raw: Path, cli: list[str]) -> None:
    records = OUT / f"records-{args.records}.jsonl"
    if not records.is_file():
        run("convert", [*cli, "convert", str(raw), "-o", str(records), "--preset", "alpaca"])
    sides = {"local": [*cli, "dedup", str(records), "-o", str(OUT / "dedup-local.jsonl")],
             "splits": [sys.executable, "-c", DEDUP_SPLITS, str(records), str(OUT / "dedup-splits"),
                        str(args.split_mib)],
             "ray": [*cli, "dedup", str(records), "-o", str(OUT / "dedup-ray"), "--engine", "ray",
                     "--split-mib", str(args.split_mib), "--concat"],
             "spark": [*cli, "dedup", str(records), "-o", str(OUT / "dedup-spark"), "--engine", "spark",
                       "--address", "local[2]", "--split-mib", str(args.split_mib), "--concat"]}
    results = alternate(sides, args.rounds)
    same = all((OUT / f"dedup-local{suffix}").read_bytes() == (OUT / f"dedup-{name}{suffix}").read_bytes()
               for name in ("ray", "spark", "splits") for suffix in (".jsonl", ".dupes.jsonl", ".rejects.jsonl"))
    meta = json.loads((OUT / "dedup-ray" / "_meta.json").read_text(encoding="utf-8"))
    shuffle = {k: meta[k] for k in ("shuffle_partitions", "shuffle_bytes", "candidate_pairs", "verified_pairs",
                                    "splits")}
    print(f"shuffle: {shuffle}; read {meta['counts']['read']:,}, deduplicated {meta['counts']['deduplicated']:,}")
    report(results, meta["counts"]["read"], args.rounds, same, OUT / "dedup-results.json", shuffle=shuffle)


if __name__ == "__main__":
    main()
