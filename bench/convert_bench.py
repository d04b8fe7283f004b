"""Benchmark: `sftdata convert` (read → validate → render with EOS → write JSONL) against the
seed-style `datasets` pipeline (bench/baseline_datasets.py), in one run, alternating sides.

    python bench/convert_bench.py                      # 100,000 records, 5 rounds
    python bench/convert_bench.py --records 1000000    # the 1M flat-RSS check (also runs sftdata on 100k)

Each side runs as its own process under a small wrapper (this script with --measure) that times
it and reads the child's peak RSS from getrusage(RUSAGE_CHILDREN), which for a wrapper with one
child is that child's own peak. Inputs and outputs go to bench/out/ (git-ignored).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
DEMO = HERE.parent.parent / "shared" / "data" / "alpaca_en_demo.json"
TINY = 10  # records in the start-up run each side also makes every round


def make_input(path: Path, records: int) -> Path:
    """alpaca_en_demo repeated to `records` rows, each repeat's instructions marked " (variant k)"."""
    count = path.with_suffix(".count")
    if path.is_file() and count.is_file() and count.read_text() == str(records):
        return path
    rows = orjson.loads(DEMO.read_bytes())
    with open(path, "wb") as handle:
        for index in range(records):
            row = dict(rows[index % len(rows)])
            variant = index // len(rows)
            if variant:
                row["instruction"] += f" (variant {variant})"
            handle.write(orjson.dumps(row) + b"\n")
    count.write_text(str(records))
    return path


def measure(command: list[str]) -> None:
    """The wrapper: run one command, print its wall seconds and peak RSS (KiB) as JSON."""
    started = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - started
    if done.returncode:
        sys.stderr.write(done.stderr.decode(errors="replace"))
        sys.exit(done.returncode)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"wall": wall, "rss_kib": usage.ru_maxrss, "cpu": usage.ru_utime + usage.ru_stime}))


def run(command: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    wrapper = [sys.executable, str(Path(__file__).resolve()), "--measure", "--", *command]
    done = subprocess.run(wrapper, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stderr}")
    return json.loads(done.stdout)


def sftdata_command(source: Path, target: Path, eos: str) -> list[str]:
    script = Path(sys.executable).with_name("sftdata")
    launcher = [str(script)] if script.is_file() else [sys.executable, "-m", "sftdata.cli"]
    return [*launcher, "convert", str(source), "-o", str(target), "--preset", "alpaca", "--template", "alpaca",
            "--eos", eos]


def run_sftdata(source: Path, target: Path, eos: str) -> dict[str, float]:
    return run(sftdata_command(source, target, eos))


def run_baseline(source: Path, target: Path, eos: str) -> dict[str, float]:
    cache = tempfile.mkdtemp(prefix="hf-datasets-cache-", dir=target.parent)
    env = {**os.environ, "HF_DATASETS_CACHE": cache, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    try:
        return run([sys.executable, str(HERE / "baseline_datasets.py"), str(source), str(target), eos], env)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def same_texts(ours: Path, theirs: Path) -> int:
    """Both outputs hold the same texts in the same order (JSON escaping may differ); returns the count."""
    count = 0
    with open(ours, "rb") as a, open(theirs, "rb") as b:
        for count, (x, y) in enumerate(zip(a, b, strict=True), 1):
            if orjson.loads(x)["text"] != orjson.loads(y)["text"]:
                raise SystemExit(f"outputs differ at line {count}")
    return count


def report(name: str, runs: list[dict[str, float]], records: int) -> dict[str, float]:
    for index, r in enumerate(runs, 1):
        print(f"  {name:9} run {index}: {r['wall']:7.2f} s wall  {r['cpu']:7.2f} s cpu  "
              f"{r['rss_kib'] / 1024:7.1f} MiB peak RSS  {records / r['wall']:>10,.0f} records/s")
    med = {k: statistics.median(r[k] for r in runs) for k in ("wall", "cpu", "rss_kib")}
    print(f"  {name:9} median: {med['wall']:7.2f} s wall  {med['cpu']:7.2f} s cpu  "
          f"{med['rss_kib'] / 1024:7.1f} MiB peak RSS  {records / med['wall']:>10,.0f} records/s")
    return med


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--eos", default="</s>")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("command", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        return measure(args.command)
    args.out.mkdir(parents=True, exist_ok=True)
    source = make_input(args.out / f"alpaca_{args.records}.jsonl", args.records)
    ours, theirs = args.out / f"sftdata_{args.records}.jsonl", args.out / f"baseline_{args.records}.jsonl"
    print(f"{args.records:,} records ({source.stat().st_size / 1e6:.0f} MB), {args.rounds} rounds, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    tiny = make_input(args.out / f"alpaca_{TINY}.jsonl", TINY)
    sides = {"sftdata": (run_sftdata, ours), "baseline": (run_baseline, theirs)}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    startup: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    for round_ in range(args.rounds):
        order = list(sides) if round_ % 2 == 0 else list(sides)[::-1]  # alternate who goes first
        for name in order:
            function, target = sides[name]
            results[name].append(function(source, target, args.eos))
            startup[name].append(function(tiny, target.with_name(f"{name}_{TINY}.jsonl"), args.eos))
    print(f"load average {os.getloadavg()[0]:.2f} at end; outputs agree on {same_texts(ours, theirs):,} texts")
    med = {name: report(name, runs, args.records) for name, runs in results.items()}
    fixed = {name: statistics.median(r["wall"] for r in runs) for name, runs in startup.items()}
    print(f"throughput ratio (baseline wall / sftdata wall): {med['baseline']['wall'] / med['sftdata']['wall']:.2f}x")
    print(f"peak RSS ratio (sftdata / baseline): {med['sftdata']['rss_kib'] / med['baseline']['rss_kib']:.2f}")
    marginal = (med["baseline"]["wall"] - fixed["baseline"]) / (med["sftdata"]["wall"] - fixed["sftdata"])
    print(f"start-up ({TINY} records): sftdata {fixed['sftdata']:.2f} s, baseline {fixed['baseline']:.2f} s; "
          f"ratio without it: {marginal:.2f}x")
    if args.records != 100_000:
        small = make_input(args.out / "alpaca_100000.jsonl", 100_000)
        runs = [run_sftdata(small, args.out / "sftdata_100000.jsonl", args.eos) for _ in range(args.rounds)]
        rss_small = statistics.median(r["rss_kib"] for r in runs) / 1024
        print(f"sftdata peak RSS: {rss_small:.1f} MiB at 100,000 records, "
              f"{med['sftdata']['rss_kib'] / 1024:.1f} MiB at {args.records:,}")


if __name__ == "__main__":
    main()
