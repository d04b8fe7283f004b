"""Benchmark: `sftdata stats` and `sftdata pretokenize` against the seed-style pipeline and the
tokenizer's own floor, and `sftdata dedup`, in one run, alternating sides.

    python bench/curate_bench.py                    # 100,000 records, 3 rounds, SmolLM2's tokenizer
    python bench/curate_bench.py --rounds 5 --tokenizer path/to/tokenizer_dir

Sides, each timed as a whole separate process (start-up and tokenizer loading included):
  seed         load_dataset("json") → map(format alpaca + EOS) → map(tokenizer, batched=True) → to_json
  floor        tokenizers' Tokenizer.encode_batch on the same rendered texts (read from a file), in
               batches of 1,000: the cost of tokenizing alone, which no pipeline can beat
  stats        sftdata stats IN --tokenizer T --template alpaca --json
  pretokenize  sftdata pretokenize IN -o OUT --tokenizer T --template alpaca --max-seq-length 4096
  dedup        sftdata dedup IN -o OUT
Targets: stats and pretokenize at least 4x the seed's throughput and within 1.3x of the floor, peak
RSS at most half the seed's; dedup under 30 s. Each side runs under a small wrapper (this script
with --measure) that reads the child's peak RSS from getrusage(RUSAGE_CHILDREN). Input is the
100k set of bench/convert_bench.py (alpaca_en_demo repeated, instructions marked per repeat).
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

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

SEED = """
import sys
from datasets import load_dataset
from transformers import AutoTokenizer
source, target, tokenizer_dir = sys.argv[1:4]
tok = AutoTokenizer.from_pretrained(tokenizer_dir)
WITH = ("Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\\n\\n### Instruction:\\n{instruction}\\n\\n"
        "### Input:\\n{input}\\n\\n### Response:\\n")
WITHOUT = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
           "request.\\n\\n### Instruction:\\n{instruction}\\n\\n### Response:\\n")
def fmt(batch):
    return {"text": [(WITH if i else WITHOUT).format(instruction=s, input=i) + o + tok.eos_token
                     for s, i, o in zip(batch["instruction"], batch["input"], batch["output"])]}
ds = load_dataset("json", data_files=source, split="train")
ds = ds.map(fmt, batched=True, remove_columns=ds.column_names)
ds = ds.map(lambda b: tok(b["text"]), batched=True, remove_columns=["text"])
ds.to_json(target)
"""

FLOOR = """
import sys, orjson
from tokenizers import Tokenizer
texts_path, tokenizer_json = sys.argv[1:3]
tok = Tokenizer.from_file(tokenizer_json)
texts, tokens = [], 0
def flush():
    global tokens, texts
    tokens += sum(len(e.ids) for e in tok.encode_batch(texts))
    texts = []
with open(texts_path, "rb") as handle:
    for line in handle:
        texts.append(orjson.loads(line)["text"])
        if len(texts) == 1000:
            flush()
flush()
print(tokens)
"""


def measure(command: list[str]) -> None:
    """The wrapper: run one command, print its wall and CPU seconds and peak RSS (KiB) as JSON."""
    started = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - started
    if done.returncode not in (0, 1):  # audit-style exit 1 is not a failure here
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


def make_input(path: Path, records: int) -> Path:
    try:
        from convert_bench import make_input as shared  # the core bench's 100k generator
    except ImportError:
        shared = None
    if shared is not None:
        return shared(path, records)
    import orjson  # the same recipe, for a checkout without bench/convert_bench.py

    rows = orjson.loads((HERE.parent.parent / "shared" / "data" / "alpaca_en_demo.json").read_bytes())
    with open(path, "wb") as handle:
        for index in range(records):
            row = dict(rows[index % len(rows)])
            if index // len(rows):
                row["instruction"] += f" (variant {index // len(rows)})"
            handle.write(orjson.dumps(row) + b"\n")
    return path


def sftdata(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("sftdata")
    return [*([str(script)] if script.is_file() else [sys.executable, "-m", "sftdata.cli"]), *args]


def sides(source: Path, texts: Path, out: Path, tokenizer: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return {
        "seed": ([sys.executable, "-c", SEED, str(source), str(out / "seed.jsonl"), str(tokenizer)], env),
        "floor": ([sys.executable, "-c", FLOOR, str(texts), str(tokenizer / "tokenizer.json")], env),
        "stats": (sftdata("stats", str(source), "--tokenizer", str(tokenizer), "--template", "alpaca", "--json"), env),
        "pretokenize": (sftdata("pretokenize", str(source), "-o", str(out / "pretok.jsonl"), "--tokenizer",
                                str(tokenizer), "--template", "alpaca", "--max-seq-length", "4096"), env),
        "dedup": (sftdata("dedup", str(source), "-o", str(out / "dedup.jsonl")), env),
    }


def report(name: str, runs: list[dict[str, float]], records: int) -> dict[str, float]:
    med = {k: statistics.median(r[k] for r in runs) for k in ("wall", "cpu", "rss_kib")}
    walls = ", ".join(f"{r['wall']:.1f}" for r in runs)
    print(f"  {name:12} median {med['wall']:7.2f} s wall ({walls})  {med['cpu']:7.2f} s cpu  "
          f"{med['rss_kib'] / 1024:7.1f} MiB peak RSS  {records / med['wall']:>8,.0f} records/s")
    return med


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokenizer", type=Path, default=None, help="tokenizer dir (default: SmolLM2's, tests/support/realmodels.py)")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("command", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        return measure(args.command)
    if args.tokenizer is None:
        from support import realmodels

        args.tokenizer = realmodels.smollm2_tokenizer_dir()
    args.out.mkdir(parents=True, exist_ok=True)
    source = make_input(args.out / f"alpaca_{args.records}.jsonl", args.records)
    texts = args.out / f"curate_texts_{args.records}.jsonl"
    subprocess.run(sftdata("render", str(source), "-o", str(texts), "--template", "alpaca", "--tokenizer",
                           str(args.tokenizer)), check=True, capture_output=True)
    work = Path(tempfile.mkdtemp(prefix="curate-bench-", dir=args.out))
    plan = sides(source, texts, work, args.tokenizer)
    print(f"{args.records:,} records ({source.stat().st_size / 1e6:.0f} MB), {args.rounds} rounds, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start; tokenizer {args.tokenizer}")
    results: dict[str, list[dict[str, float]]] = {name: [] for name in plan}
    names = list(plan)
    for round_ in range(args.rounds):
        order = names[round_ % len(names):] + names[:round_ % len(names)]  # rotate who goes first
        for name in order:
            command, env = plan[name]
            if name == "seed":
                env = {**env, "HF_DATASETS_CACHE": tempfile.mkdtemp(prefix="hf-cache-", dir=work)}
            results[name].append(run(command, env))
            print(f"  round {round_ + 1} {name:12} {results[name][-1]['wall']:7.2f} s", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at end")
    med = {name: report(name, runs, args.records) for name, runs in results.items()}
    figures = {"records": args.records, "rounds": args.rounds, "medians": med}
    for side in ("stats", "pretokenize"):
        figures[side] = {"x_seed_throughput": med["seed"]["wall"] / med[side]["wall"],
                         "x_floor_time": med[side]["wall"] / med["floor"]["wall"],
                         "x_floor_cpu": med[side]["cpu"] / med["floor"]["cpu"],
                         "rss_vs_seed": med[side]["rss_kib"] / med["seed"]["rss_kib"]}
        f = figures[side]
        print(f"{side:12} {f['x_seed_throughput']:.2f}x the seed's throughput (target >= 4), "
              f"{f['x_floor_time']:.2f}x the floor's time (target <= 1.3; cpu {f['x_floor_cpu']:.2f}x), "
              f"peak RSS {f['rss_vs_seed']:.2f} of the seed's (target <= 0.5)")
    print(f"dedup        {med['dedup']['wall']:.1f} s for {args.records:,} records (target < 30 s)")
    (args.out / "curate_bench.json").write_text(json.dumps(figures, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
