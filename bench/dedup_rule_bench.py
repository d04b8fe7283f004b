"""Dedup's keep rule at scale: this checkout against a baseline checkout, alternating, whole processes.

    python bench/dedup_rule_bench.py --baseline /path/to/old/checkout            # 1,000,000 records
    python bench/dedup_rule_bench.py --baseline ../old --records 100000 --rounds 3

The input is load_bench.py's generated 1M-record file (seeded; ~8% near duplicates), converted once
to records. Each round runs `sftdata dedup records.jsonl -o OUT` once with the baseline's sftdata on
PYTHONPATH and once with this checkout's, in alternating order, each a separate process whose wall time
and peak RSS (ru_maxrss of a wrapper's child) are recorded; medians and ratios are printed and written
to bench/out/dedup_rule/results.json. Also counted from each side's dupes file: rows dropped, and rows
dropped with a reported similarity below the threshold (the baseline's chains; the rule makes it 0).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out" / "dedup_rule"
WRAPPER = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[2:]); "
           "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
           "sys.exit(code)")


def run_side(name: str, pythonpath: str | None, records: Path, threshold: float) -> dict:
    out = OUT / f"{name}.jsonl"
    peak = OUT / f"{name}.peak"
    env = {**os.environ, **({"PYTHONPATH": pythonpath} if pythonpath else {})}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", WRAPPER, str(peak), sys.executable, "-m", "sftdata.cli", "dedup",
                           str(records), "-o", str(out), "--threshold", str(threshold), "--json"],
                          capture_output=True, text=True, env=env, cwd="/tmp")
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed: {proc.stderr[-2000:]}")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    below = dropped = 0
    with open(OUT / f"{name}.dupes.jsonl", "rb") as handle:
        for line in handle:
            row = json.loads(line)
            dropped += 1
            below += row["similarity"] < threshold
    return {"wall_s": wall, "peak_mib": int(peak.read_text()) / 1024, "dropped": dropped, "below_threshold": below,
            "deduplicated": summary.get("deduplicated")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=True, help="a checkout of sftdata to compare with")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threshold", type=float, default=0.7)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from load_bench import generate

    OUT.mkdir(parents=True, exist_ok=True)
    raw, records = OUT / "raw.jsonl", OUT / "records.jsonl"
    if not records.is_file() or json.loads((OUT / "input.json").read_text()).get("records") != args.records:
        generate(raw, args.records)
        subprocess.run([sys.executable, "-m", "sftdata.cli", "convert", str(raw), "-o", str(records), "--preset",
                        "alpaca", "--json"], check=True, capture_output=True)
        (OUT / "input.json").write_text(json.dumps({"records": args.records}))
    sides = {"baseline": str(Path(args.baseline).resolve()), "sftdata": None}
    results: dict[str, list[dict]] = {name: [] for name in sides}
    for round_ in range(args.rounds):
        order = list(sides) if round_ % 2 == 0 else list(sides)[::-1]
        for name in order:
            results[name].append(run_side(name, sides[name], records, args.threshold))
            print(name, results[name][-1], flush=True)
    medians = {name: {k: statistics.median(r[k] for r in runs) for k in ("wall_s", "peak_mib")}
               for name, runs in results.items()}
    summary = {"records": args.records, "rounds": args.rounds, "runs": results, "medians": medians,
               "ratio_wall": medians["sftdata"]["wall_s"] / medians["baseline"]["wall_s"],
               "ratio_peak": medians["sftdata"]["peak_mib"] / medians["baseline"]["peak_mib"]}
    (OUT / "results.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: summary[k] for k in ("medians", "ratio_wall", "ratio_peak")}, indent=2))


if __name__ == "__main__":
    main()
