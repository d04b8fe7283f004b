"""`sftdata train` against the reference-notebook setup: same model, data, steps, LoRA and optimizer.

    python bench/train_bench.py                   # SmolLM2-135M-Instruct (test cache), 24 steps, 2 rounds
    python bench/train_bench.py --steps 40 --rounds 3 --model path/to/model-or.gguf

- **Data**: ``../shared/data/alpaca_en_demo.json`` as records, keeping the samples that fit
  ``--max-length`` tokens when rendered (so neither side truncates and both see the same samples).
- **Baseline** (the reference notebooks): TRL ``SFTTrainer`` on a ``text`` field (the same Alpaca
  text sftdata renders, EOS included), ``tokenizer.pad_token = tokenizer.eos_token``, no packing,
  random batch order.
- **sftdata**: ``sftdata.trainers`` as ``sftdata train`` wires it: records rendered and tokenized by
  sftdata (completion-only loss), a distinct pad token, padding-free length-grouped batches.
  **sftdata-padded** (``--sides baseline,sftdata,sftdata-padded``): the same with length-grouped
  batches padded per row instead of padding-free (no block-diagonal mask over the whole batch).
- Both: the 4-bit NF4 base (fp32 compute on CPU), LoRA r=8/alpha=16 on all linear layers,
  batch ``--batch``, lr 2e-4, torch AdamW, no gradient checkpointing, seed 3407.
- **Measured**, each side a whole separate process, the sides alternating: real (non-pad) tokens
  processed per second of ``trainer.train()``, loss-bearing tokens per second, the fraction of the
  processed positions that were padding (counted on every collated batch), and peak RSS (whole
  process, and sampled during training only).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "train"
SHARED = ROOT.parent / "shared" / "data"


SIDES = ("baseline", "sftdata", "sftdata-padded")


def _default_model() -> str:
    sys.path.insert(0, str(ROOT / "tests"))
    from support import realmodels

    return str(realmodels.smollm2_gguf())


class Counter:
    """Wraps a collator: counts processed positions, real tokens and loss-bearing tokens."""

    def __init__(self, collate):
        self.collate, self.processed, self.real, self.trained, self.largest = collate, 0, 0, 0, 0

    def __call__(self, examples):
        batch = self.collate(examples)
        self.processed += batch["input_ids"].numel()
        self.largest = max(self.largest, batch["input_ids"].numel())
        self.real += int(batch["attention_mask"].sum()) if "attention_mask" in batch else batch["input_ids"].numel()
        self.trained += int((batch["labels"][:, 1:] != -100).sum())
        return batch


class RssSampler(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        import psutil

        self.process, self.peak, self.stop = psutil.Process(), 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.05)


def _timed_train(trainer) -> dict:
    counter = Counter(trainer.data_collator)
    trainer.data_collator = counter
    sampler = RssSampler()
    sampler.start()
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    sampler.stop.set()
    sampler.join()
    return {"seconds": seconds, "processed": counter.processed, "largest_batch": counter.largest, "real": counter.real, "trained": counter.trained,
            "steps": trainer.state.global_step, "train_peak_rss": sampler.peak,
            "first_loss": next(e["loss"] for e in trainer.state.log_history if "loss" in e)}


def side_sftdata(args) -> dict:
    from sftdata.tokenize.load import load_tokenizer
    from sftdata.trainers.checks import check_no_leakage, choose_pad
    from sftdata.trainers.config import resolve_config
    from sftdata.trainers.data import Preparer
    from sftdata.trainers.models import load_model, quantization, resolve_model
    from sftdata.trainers.qlora import build_trainer, keep_training_layout

    padding_free = args.side == "sftdata"  # "sftdata-padded": length-grouped batches padded per row
    config = resolve_config("cpu-smoke", {"max_steps": args.steps, "batch_size": args.batch, "lora_r": 8,
                                          "max_length": args.max_length, "save_steps": 10**6,
                                          "padding_free": padding_free, "group_by_length": True})
    source = resolve_model(args.model)
    tokenizer = load_tokenizer(source.path)
    data = Preparer(tokenizer, "alpaca", config.max_length).load([args.records])
    choose_pad(tokenizer, data.eos)
    model = load_model(source, precision="fp32", device_map={"": "cpu"}, quantization_config=quantization(config, "fp32"))
    keep_training_layout(model)
    if padding_free:
        check_no_leakage(model, tokenizer, "--padding-free")
    trainer = build_trainer(model, tokenizer, data, None, config, Path(args.workdir), "fp32", "cpu", None)
    return _timed_train(trainer)


def side_baseline(args) -> dict:
    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
    from trl import SFTConfig, SFTTrainer

    from sftdata.trainers.models import resolve_model

    path = resolve_model(args.model).path
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.pad_token = tokenizer.eos_token  # as the reference notebooks do
    dataset = load_dataset("json", data_files=args.texts, split="train")
    bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                             bnb_4bit_compute_dtype=torch.float32)
    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=bnb, dtype=torch.float32,
                                                 device_map={"": "cpu"})
    sft = SFTConfig(output_dir=args.workdir, max_steps=args.steps, per_device_train_batch_size=args.batch,
                    learning_rate=2e-4, optim="adamw_torch", use_cpu=True, bf16=False, fp16=False,
                    activation_checkpointing=False, max_length=args.max_length, packing=False,
                    dataset_text_field="text", report_to=[], logging_steps=1, save_strategy="no", seed=3407,
                    disable_tqdm=True, lr_scheduler_type="linear")
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=sft, train_dataset=dataset, processing_class=tokenizer, peft_config=lora)
    return _timed_train(trainer)


def prepare(args) -> tuple[Path, Path]:
    """Records that fit max_length, and the same samples rendered as Alpaca text for the baseline."""
    from sftdata import pipeline
    from sftdata.tokenize.load import load_tokenizer
    from sftdata.trainers.models import resolve_model

    OUT.mkdir(parents=True, exist_ok=True)
    rows = json.loads((SHARED / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    raw = OUT / "alpaca_records.jsonl"
    raw.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tokenizer = load_tokenizer(resolve_model(args.model).path)
    texts_all = OUT / "alpaca_text_all.jsonl"
    pipeline.render([raw], texts_all, template="alpaca", eos=tokenizer.eos_token)
    texts = [json.loads(line)["text"] for line in texts_all.read_text(encoding="utf-8").splitlines()]
    keep = [i for i, t in enumerate(texts) if len(tokenizer(t, add_special_tokens=False)["input_ids"]) <= args.max_length]
    records, text_file = OUT / "records.jsonl", OUT / "texts.jsonl"
    records.write_text("".join(json.dumps(rows[i], ensure_ascii=False) + "\n" for i in keep), encoding="utf-8")
    text_file.write_text("".join(json.dumps({"text": texts[i]}, ensure_ascii=False) + "\n" for i in keep),
                         encoding="utf-8")
    print(f"data: {len(keep)} of {len(rows)} alpaca_en_demo samples fit {args.max_length} tokens", flush=True)
    return records, text_file


def child(args) -> None:
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error", HF_DATASETS_DISABLE_PROGRESS_BARS="1")
    import warnings

    warnings.filterwarnings("ignore")
    result = (side_baseline if args.side == "baseline" else side_sftdata)(args)
    result["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print("RESULT " + json.dumps(result), flush=True)


def run_side(args, side: str, records: Path, texts: Path, round_: int) -> dict:
    workdir = OUT / f"{side}-{round_}"
    cmd = [sys.executable, __file__, "--child", side, "--model", args.model, "--steps", str(args.steps),
           "--batch", str(args.batch), "--max-length", str(args.max_length), "--records", str(records),
           "--texts", str(texts), "--workdir", str(workdir)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
    if proc.returncode or line is None:
        sys.exit(f"{side} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    result = json.loads(line[7:])
    result.update(side=side, round=round_, tokens_per_s=result["real"] / result["seconds"],
                  trained_per_s=result["trained"] / result["seconds"], pad_fraction=1 - result["real"] / result["processed"])
    print(f"  {side:8s} round {round_}: {result['tokens_per_s']:7.1f} real tok/s, {result['trained_per_s']:7.1f} "
          f"loss tok/s, padding {result['pad_fraction']:.1%}, {result['seconds']:.1f} s for {result['steps']} steps, "
          f"largest batch {result['largest_batch']} positions, "
          f"peak RSS {result['peak_rss'] / 2**20:.0f} MiB (training {result['train_peak_rss'] / 2**20:.0f} MiB)",
          flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--child", choices=SIDES, dest="side")
    parser.add_argument("--sides", default="baseline,sftdata",
                        help=f"which sides to run, in this order each round (of {', '.join(SIDES)})")
    parser.add_argument("--records")
    parser.add_argument("--texts")
    parser.add_argument("--workdir")
    args = parser.parse_args()
    args.model = args.model or _default_model()
    if args.side:
        return child(args)
    print(f"load average at start: {os.getloadavg()}", flush=True)
    records, texts = prepare(args)
    sides = args.sides.split(",")
    runs = [run_side(args, side, records, texts, r) for r in range(args.rounds) for side in sides]
    report(runs)
    print(f"load average at end: {os.getloadavg()}")


def report(runs: list[dict]) -> None:
    sides = list(dict.fromkeys(r["side"] for r in runs))
    med = {side: {k: statistics.median(r[k] for r in runs if r["side"] == side)
                  for k in ("tokens_per_s", "trained_per_s", "pad_fraction", "peak_rss", "train_peak_rss")}
           for side in sides}
    for side, m in med.items():
        print(f"median {side:8s}: {m['tokens_per_s']:.1f} real tok/s, {m['trained_per_s']:.1f} loss tok/s, padding "
              f"{m['pad_fraction']:.1%}, peak RSS {m['peak_rss'] / 2**20:.0f} MiB (training {m['train_peak_rss'] / 2**20:.0f} MiB)")
    b = med.get("baseline")
    for side in (s for s in sides if s != "baseline" and b):
        m = med[side]
        print(f"ratios {side}/baseline: real tokens/s x{m['tokens_per_s'] / b['tokens_per_s']:.2f}, "
              f"peak RSS x{m['peak_rss'] / b['peak_rss']:.2f} (training x{m['train_peak_rss'] / b['train_peak_rss']:.2f})")


if __name__ == "__main__":
    main()
