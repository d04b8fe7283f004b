"""`sftdata eval`'s generation throughput against a bare loop over the same backend, alternating.

    python bench/eval_bench.py                      # trains a small identity run first (cpu-smoke, 10 steps)
    python bench/eval_bench.py --run RUN_DIR --prompts 32 --rounds 3 [--gguf RUN.gguf | --llama-cpp DIR]

In-process: `sftdata eval RUN --data EVAL -n N --max-new-tokens M --json` (its own figure `answers_per_s`:
answers over the time spent generating, batches of 8) against a bare transformers loop in a separate
process: the base loaded by peft with the adapter, the same prompts rendered by hand in ChatML, left-padded
batches of 8 through `model.generate` (greedy, the same stop id), timed the same way. Each side is a whole
process; the sides alternate; medians and the ratio are printed. With `--gguf` (or an export made here),
the same for a llama.cpp server: `sftdata eval RUN.gguf` (its server, 4 requests in flight) against a loop
of 4 threads posting /v1/completions to a llama.cpp server on the same GGUF. Target (issue 17): eval at
>= 90% of the bare loop's answers per second. Results go to bench/out/eval/results.json.
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
OUT = HERE / "out" / "eval"
sys.path.insert(0, str(ROOT / "tests"))

QUESTIONS = ["Who are you?", "What is your name?", "Introduce yourself.", "Who built you?", "hey", "hello there",
             "What can you do?", "Are you a person?"]

BARE_INPROCESS = r'''
import json, sys, time, torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
run, base, data, n, m = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
tok = AutoTokenizer.from_pretrained(run)
quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                           bnb_4bit_compute_dtype=torch.float32)  # as the cpu-smoke run was trained and sftdata loads it
model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, quantization_config=quant, device_map={"": "cpu"})
model = PeftModel.from_pretrained(model, run).eval()
rows = [json.loads(line) for line in open(data)][:n]
prompts = [f"<|im_start|>user\n{r['instruction']}<|im_end|>\n<|im_start|>assistant\n" for r in rows]
stop = tok.convert_tokens_to_ids("<|im_end|>")
tok.padding_side = "left"
began = time.perf_counter()
for i in range(0, len(prompts), 8):
    batch = tok(prompts[i:i + 8], return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        model.generate(**batch, do_sample=False, max_new_tokens=m, eos_token_id=[stop], pad_token_id=tok.pad_token_id)
print(json.dumps({"answers_per_s": len(prompts) / (time.perf_counter() - began)}))
'''

BARE_SERVER = r'''
import json, sys, time, urllib.request
from concurrent.futures import ThreadPoolExecutor
sys.path.insert(0, sys.argv[1])
from support.llama_server import LlamaServer
gguf, data, n, m, threads, log = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
rows = [json.loads(line) for line in open(data)][:n]
prompts = [f"<|im_start|>user\n{r['instruction']}<|im_end|>\n<|im_start|>assistant\n" for r in rows]
with LlamaServer(gguf, log, threads=threads) as server:
    def ask(p):
        body = {"prompt": p, "max_tokens": m, "temperature": 0.0, "seed": 0, "stop": ["<|im_end|>"]}
        req = urllib.request.Request(server.base_url + "/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        return json.load(urllib.request.urlopen(req, timeout=600))
    began = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(ask, prompts))
    print(json.dumps({"answers_per_s": len(prompts) / (time.perf_counter() - began)}))
'''


def sh(cmd: list[str], env: dict[str, str] | None = None) -> tuple[dict, float]:
    began = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    wall = time.perf_counter() - began
    if done.returncode not in (0, 1):
        raise SystemExit(f"{cmd[:4]} failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), wall


def make_run(work: Path) -> Path:
    from support.realmodels import smollm2_gguf

    run = work / "run"
    if (run / "adapter_config.json").is_file():
        return run
    data = work / "identity.jsonl"
    rows = json.loads((ROOT.parent / "shared" / "data" / "identity.json").read_text(encoding="utf-8"))
    data.write_text("".join(json.dumps({k: v.replace("{{name}}", "Hanbit").replace("{{author}}", "sftdata team")
                                        for k, v in r.items()}) + "\n" for r in rows), encoding="utf-8")
    sh([sys.executable, "-m", "sftdata.cli", "train", str(data), "--model", str(smollm2_gguf()), "-o", str(run),
        "--config", "cpu-smoke", "--template", "chatml", "--max-steps", "10", "--overwrite", "--json"])
    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", type=Path)
    parser.add_argument("--gguf", type=Path, help="an export of the run (merged GGUF) for the server comparison")
    parser.add_argument("--llama-cpp", type=Path, help="llama.cpp converters: export the run to a merged GGUF here")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    run = args.run or make_run(OUT)
    if args.gguf is None and args.llama_cpp:
        args.gguf = OUT / "run.gguf"
        if not args.gguf.is_file():
            sh([sys.executable, "-m", "sftdata.cli", "export-gguf", str(run), "-o", str(args.gguf), "--merge",
                "--llama-cpp", str(args.llama_cpp), "--json"])
    info = json.loads((run / "sftdata_train.json").read_text(encoding="utf-8"))
    base = info["base_model"]["path"]  # the GGUF's converted safetensors, as sftdata loads it
    data = OUT / "eval.jsonl"
    data.write_text("".join(json.dumps({"instruction": QUESTIONS[i % len(QUESTIONS)] + " " * (i // len(QUESTIONS)),
                                        "output": "I am Hanbit."}) + "\n" for i in range(args.prompts)),
                    encoding="utf-8")
    env = {"OMP_NUM_THREADS": str(args.threads)}
    sides = {
        "sftdata eval (in-process)": [sys.executable, "-m", "sftdata.cli", "eval", str(run), "--data", str(data),
                                      "-o", str(OUT / "answers.jsonl"), "--max-new-tokens", str(args.max_new_tokens),
                                      "--json"],
        "bare transformers loop": [sys.executable, "-c", BARE_INPROCESS, str(run), str(base), str(data),
                                   str(args.prompts), str(args.max_new_tokens)],
    }
    if args.gguf:
        sides["sftdata eval (llama.cpp)"] = [sys.executable, "-m", "sftdata.cli", "eval", str(args.gguf), "--data",
                                             str(data), "-o", str(OUT / "answers-gguf.jsonl"), "--max-new-tokens",
                                             str(args.max_new_tokens), "--threads", str(args.threads), "--json"]
        sides["bare llama.cpp loop"] = [sys.executable, "-c", BARE_SERVER, str(ROOT / "tests"), str(args.gguf),
                                        str(data), str(args.prompts), str(args.max_new_tokens), str(args.threads),
                                        str(OUT / "bare-server.log")]
    figures: dict[str, list[float]] = {k: [] for k in sides}
    walls: dict[str, list[float]] = {k: [] for k in sides}
    for round_ in range(args.rounds):
        for name in (list(sides) if round_ % 2 == 0 else list(reversed(sides))):
            result, wall = sh(sides[name], env)
            rate = result["tuned"]["answers_per_s"] if "tuned" in result else result["answers_per_s"]
            figures[name].append(rate)
            walls[name].append(wall)
            print(f"round {round_ + 1} {name}: {rate:.2f} answers/s, {wall:.1f} s wall", flush=True)
    print(f"\n{args.prompts} prompts, {args.max_new_tokens} new tokens at most, {args.rounds} rounds (medians):")
    for name in sides:
        print(f"  {name:28} {statistics.median(figures[name]):6.2f} answers/s  {statistics.median(walls[name]):6.1f} s wall")
    pairs = [("sftdata eval (in-process)", "bare transformers loop"), ("sftdata eval (llama.cpp)", "bare llama.cpp loop")]
    for ours, bare in pairs:
        if ours in figures:
            print(f"  {ours} / {bare}: {statistics.median(figures[ours]) / statistics.median(figures[bare]):.2f}")
    (OUT / "results.json").write_text(json.dumps({"answers_per_s": figures, "wall_s": walls}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
