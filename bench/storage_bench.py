"""Reading and writing an object store (s3://, through fsspec and s3fs) against the local disk, alternating.

    python bench/storage_bench.py                     # 1,000,000 records, 3 rounds
    python bench/storage_bench.py --records 100000 --rounds 1

The store is moto's S3 server on 127.0.0.1, in a process of its own (started here; its CPU is the
store's, not the client's, and is reported apart). It stands in for S3 only as far as the client's work
goes: the HTTP requests, the ranged reads and the uploads that sftdata and s3fs make; a real store's
latency and bandwidth are not measured. Sides, each one whole process, alternating (scale_bench.py's
`run`: wall time, CPU seconds per 1k rows and the peak RSS of the process tree):

- `disk` / `s3`: `sftdata convert --preset alpaca` of load_bench.py's generated file, from the disk to
  the disk, and from the bucket into the bucket (the columnar path either way);
- `splits-disk` / `splits-s3`: the same file through the split path with no engine (32 MiB byte ranges
  read as ranged requests, each part written locally and uploaded whole, `--concat` read back from the
  store and uploaded);
- `dedup-disk` / `dedup-s3`: `sftdata dedup` of the converted records split by split with no engine
  (sketch files uploaded to OUT/.work/ and fetched back to be mapped).

The outputs in the bucket are checked byte for byte against the disk's. Results go to
bench/out/storage/results.json.
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "storage"
BUCKET = "s3://sftdata-bench"
SPLITS = ("import sys; from sftdata.api.scaled import on_engine; "
          "on_engine('convert', [sys.argv[1]], sys.argv[2], 'local', None, float(sys.argv[3]), True, "
          "dict(preset='alpaca'))")
DEDUP = ("import sys; from sftdata.scale.dedup import dedup; "
         "dedup([sys.argv[1]], sys.argv[2], engine='local', split_mib=32, concat=True)")


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_store() -> subprocess.Popen:
    port = _port()
    os.environ.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "bench",
                       "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                       "AWS_EC2_METADATA_DISABLED": "true", "NO_PROXY": "127.0.0.1"})
    server = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server
        except OSError:
            time.sleep(0.1)
    raise SystemExit("moto_server did not start (pip install 'moto[server]')")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from scale_bench import alternate, generated, report, run

    raw = generated(OUT, args.records)
    records = OUT / f"records-{args.records}.jsonl"
    cli = [sys.executable, "-m", "sftdata.cli"]
    if not records.is_file():
        run("convert", [*cli, "convert", str(raw), "-o", str(records), "--preset", "alpaca"])
    store = start_store()
    import psutil

    try:
        import fsspec

        fs = fsspec.filesystem("s3")
        fs.mkdir(BUCKET)
        fs.put_file(str(raw), f"{BUCKET}/raw.jsonl")
        fs.put_file(str(records), f"{BUCKET}/records.jsonl")
        served_before = psutil.Process(store.pid).cpu_times()
        sides = {
            "disk": [*cli, "convert", str(raw), "-o", str(OUT / "disk.jsonl"), "--preset", "alpaca"],
            "s3": [*cli, "convert", f"{BUCKET}/raw.jsonl", "-o", f"{BUCKET}/s3.jsonl", "--preset", "alpaca"],
            "splits-disk": [sys.executable, "-c", SPLITS, str(raw), str(OUT / "splits-disk")],
            "splits-s3": [sys.executable, "-c", SPLITS, f"{BUCKET}/raw.jsonl", f"{BUCKET}/splits-s3"],
            "dedup-disk": [sys.executable, "-c", DEDUP, str(records), str(OUT / "dedup-disk")],
            "dedup-s3": [sys.executable, "-c", DEDUP, f"{BUCKET}/records.jsonl", f"{BUCKET}/dedup-s3"],
        }
        results = alternate(sides, args.rounds)
        served = psutil.Process(store.pid).cpu_times()
        store_cpu = served.user + served.system - served_before.user - served_before.system
        same = all(fs.cat(f"{BUCKET}/{name}.jsonl") == (OUT / f"{local}.jsonl").read_bytes()
                   for name, local in (("s3", "disk"), ("splits-s3", "splits-disk"), ("dedup-s3", "dedup-disk")))
        same = same and fs.cat(f"{BUCKET}/dedup-s3.dupes.jsonl").replace(BUCKET.encode(), str(OUT).encode()) \
            .replace(b"records-%d" % args.records, b"records") == \
            (OUT / "dedup-disk.dupes.jsonl").read_bytes().replace(b"records-%d" % args.records, b"records")
    finally:
        store.terminate()
    print(f"store (moto) CPU over all s3 sides and rounds: {store_cpu:.1f} s")
    report(results, args.records, args.rounds, same, OUT / "results.json", store_cpu_s=store_cpu)


if __name__ == "__main__":
    main()
