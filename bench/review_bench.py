"""sftdata review on a large pretokenized Korean chat file: how soon it serves, how fast pages flip and filters
answer through its HTTP API, and its peak memory, from 100k to 1M rows.

    python bench/review_bench.py                       # 100,000 and 1,000,000 rows
    python bench/review_bench.py --rows 100000         # one size

The input is generated (seeded): 512 Korean chats (a question and an answer of random Hangul syllable words, a
reasoning turn in every other one) pretokenized for real by `sftdata pretokenize` with SmolLM2's tokenizer and
the chatml_think template, then repeated line by line to the row count; one row in a hundred has its mask zeroed
(the audit's `nothing_trained` finding, the filter measured). Files are cached under bench/out/review/.

Each size is a whole `sftdata review FILE --tokenizer DIR --no-open --json --port 0` process. Measured: the
seconds from starting the process until it prints its URL (imports, tokenizer loading, which the server reports
apart as tokenizer_seconds, and binding); the first page (GET /) after that; the seconds until every row is
indexed (/api/status); then 60 page flips to random pages (GET /?page=N) and 60 filter requests by finding
(GET /?finding=nothing_trained&page=N), each an HTML page of 50 rows, p50 and p95; and the server process's peak
RSS (VmHWM). Targets: first page < 1.5 s after the URL, p95 < 300 ms, RSS < 500 MB, all flat from 100k to 1M.
Results go to bench/out/review/results.json.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "review"
sys.path.insert(0, str(ROOT / "tests"))


def _words(rng: random.Random, n: int) -> str:
    return " ".join("".join(chr(0xAC00 + rng.randrange(11172)) for _ in range(rng.randint(1, 4))) for _ in range(n))


def make_input(rows: int) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"ko_chat_{rows}.pretokenized.jsonl"
    if path.is_file():
        return path
    import sftdata
    from support.realmodels import smollm2_tokenizer_dir

    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as folder:
        records = Path(folder) / "chats.jsonl"
        with records.open("w", encoding="utf-8") as f:
            for i in range(512):
                answer = {"role": "assistant", "content": _words(rng, rng.randint(6, 14))}
                if i % 2:
                    answer["reasoning_content"] = _words(rng, rng.randint(3, 8))
                chat = {"messages": [{"role": "user", "content": _words(rng, rng.randint(3, 8)) + "?"}, answer]}
                f.write(json.dumps(chat, ensure_ascii=False) + "\n")
        small = Path(folder) / "small.jsonl"
        sftdata.pretokenize([records], small, tokenizer=str(smollm2_tokenizer_dir()), template="chatml_think",
                            max_seq_length=4096)
        lines = small.read_bytes().splitlines()
    empty = [json.dumps({**(row := json.loads(line)), "assistant_masks": [0] * len(row["assistant_masks"])},
                        separators=(",", ":")).encode() for line in lines]
    partial = path.with_suffix(".partial")
    with partial.open("wb") as f:
        for i in range(rows):
            f.write((empty if i % 100 == 99 else lines)[i % len(lines)] + b"\n")
    partial.rename(path)
    return path


def _get(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url) as response:
        response.read()
        assert response.status == 200
    return time.perf_counter() - started


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50_ms": round(statistics.median(ordered) * 1000, 1),
            "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 1)}


def measure(path: Path, rows: int) -> dict[str, object]:
    from support.realmodels import smollm2_tokenizer_dir

    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "sftdata.cli", "review", str(path), "--tokenizer",
                                str(smollm2_tokenizer_dir()), "--no-open", "--json", "--port", "0", "--read-only"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    try:
        answered = json.loads(process.stdout.readline())
        serving = time.perf_counter() - started
        url = answered["url"]
        first = _get(url)
        while True:
            with urllib.request.urlopen(url + "api/status") as response:
                status = json.loads(response.read())
            if status["done"]:
                break
            time.sleep(0.05)
        indexed = time.perf_counter() - started - serving
        rng = random.Random(1)
        pages = rows // 50
        flips = [_get(f"{url}?page={rng.randrange(pages)}") for _ in range(60)]
        matched = rows // 100
        filters = [_get(f"{url}?finding=nothing_trained&page={rng.randrange(max(1, matched // 50))}") for _ in range(60)]
        peak = next(int(line.split()[1]) for line in Path(f"/proc/{process.pid}/status").read_text().splitlines()
                    if line.startswith("VmHWM")) / 1024
    finally:
        process.terminate()
        process.wait(30)
    return {"rows": rows, "file_mb": round(path.stat().st_size / 1e6, 1), "url_s": round(serving, 2),
            "tokenizer_s": answered["tokenizer_seconds"], "first_page_s": round(first, 3),
            "indexed_s": round(indexed, 2), "flip": _percentiles(flips), "filter": _percentiles(filters),
            "peak_rss_mb": round(peak, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, action="append", help="row counts (default 100000 and 1000000)")
    args = parser.parse_args()
    results = []
    for rows in args.rows or [100_000, 1_000_000]:
        path = make_input(rows)
        result = measure(path, rows)
        results.append(result)
        print(json.dumps(result), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
