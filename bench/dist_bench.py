"""`sftdata convert` on one process against `--engine ray` and `--engine spark` (2 CPUs), alternating.

    python bench/dist_bench.py                        # 1,000,000 records, 3 rounds
    python bench/dist_bench.py --records 100000 --rounds 1 --split-mib 16

The input is load_bench.py's generated file (seeded; Korean and English rows, ~0.1% broken lines). Sides,
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
SPLITS = ("import sys; from sftdata.dist.run import convert; "
          "convert([sys.argv[1]], sys.argv[2], engine='local', split_mib=float(sys.argv[3]), concat=True, options="
          "dict(preset='alpaca', mapping=None, to=None, encoding='auto', records_path=None, template=None, "
          "tokenizer=None, eos=None, style=None, template_args=None, train_on='all', split_thinking=False, "
          "split_turns=False))")


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
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(HERE))
    from load_bench import generate

    raw = OUT / f"raw-{args.records}.jsonl"
    if not raw.is_file():
        generate(raw, args.records)
    cli = [sys.executable, "-m", "sftdata.cli"]
    sides = {"local": [*cli, "convert", str(raw), "-o", str(OUT / "local.jsonl"), "--preset", "alpaca"],
             "splits": [sys.executable, "-c", SPLITS, str(raw), str(OUT / "splits"), str(args.split_mib)],
             "ray": [*cli, "convert", str(raw), "-o", str(OUT / "ray"), "--preset", "alpaca", "--engine", "ray",
                     "--split-mib", str(args.split_mib), "--concat"],
             "spark": [*cli, "convert", str(raw), "-o", str(OUT / "spark"), "--preset", "alpaca", "--engine", "spark",
                       "--address", "local[2]", "--split-mib", str(args.split_mib), "--concat"]}
    results: dict[str, list[dict[str, float]]] = {k: [] for k in sides}
    for round_ in range(args.rounds):
        for name in (list(sides) if round_ % 2 == 0 else list(reversed(sides))):
            figures = run(name, sides[name])
            results[name].append(figures)
            print(f"round {round_ + 1} {name}: {figures['wall_s']:.1f} s wall, {figures['cpu_s']:.1f} s CPU, "
                  f"{figures['peak_mib']:.0f} MiB peak", flush=True)
    local = (OUT / "local.jsonl").read_bytes()
    same = all(local == (OUT / f"{name}.jsonl").read_bytes() for name in ("ray", "spark", "splits"))
    print(f"\n{args.records:,} records, {args.rounds} rounds, medians; outputs identical: {same}")
    for name, runs in results.items():
        wall = statistics.median(r["wall_s"] for r in runs)
        cpu = statistics.median(r["cpu_s"] for r in runs)
        peak = statistics.median(r["peak_mib"] for r in runs)
        print(f"  {name:6} {wall:7.1f} s wall  {cpu / args.records * 1000:6.3f} CPU s per 1k rows  {peak:6.0f} MiB peak")
    (OUT / "results.json").write_text(json.dumps({"records": args.records, "identical": same, "runs": results},
                                                 indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
