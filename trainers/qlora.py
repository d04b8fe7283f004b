"""`sftdata train`: QLoRA SFT over sftdata's output with TRL's SFTTrainer, peft and bitsandbytes.

Thin by design (compare TRL's ``scripts/sft.py``): TRL, peft, transformers and bitsandbytes do the
work; this module feeds them the token ids and loss masks sftdata made (``trainers/data.py``), a pad
token distinct from the EOS, a 4-bit base, and checks that the masks and EOS survive collation
(``trainers/checks.py``). Under ``accelerate launch`` on several GPUs it runs as DDP unchanged.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import OptionError, TrainError, option
from ..tokenize.load import load_tokenizer
from . import outputs
from .checks import check_no_leakage, choose_pad, verify_labels
from .config import TrainConfig
from .data import Preparer, TrainData
from .models import ModelSource, load_model, quantization, resolve_model


@dataclass(slots=True)
class TrainProgress:
    """What the progress callback receives: after each optimizer step and each log."""

    event: str  # "begin" | "step" | "log" | "end"
    step: int
    max_steps: int
    loss: float | None
    tokens: int  # real (non-pad) tokens processed in this session
    elapsed: float
    eval_loss: float | None = None

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.elapsed if self.elapsed > 0 else 0.0


ProgressFn = Callable[[TrainProgress], None]


@dataclass(slots=True)
class TrainResult:
    out_dir: Path
    steps: int
    metrics: dict[str, Any]
    info: dict[str, Any]


def pick_device(config: TrainConfig) -> tuple[str, str]:
    """(device, precision): bf16 on GPUs that have it, fp16 on the others, fp32 on CPU."""
    import torch

    cuda = torch.cuda.is_available()
    precision = config.precision
    if precision == "auto":
        precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "fp32"
    if not cuda and precision == "fp16":
        raise OptionError("needs a CUDA GPU", option="precision", value="fp16",
                          hint=f"on CPU use {option('precision', 'fp32')} (or bf16)")
    if cuda and precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise OptionError("is not supported by this GPU (pre-Ampere, e.g. T4)", option="precision", value="bf16",
                          hint=f"use {option('precision', 'fp16')}")
    return ("cuda" if cuda else "cpu"), precision


def cpu_threads(config: TrainConfig) -> int:
    """Set torch's CPU thread count for training and return it (see TrainConfig.cpu_threads)."""
    import torch

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = config.cpu_threads or max(1, usable // 2)
    torch.set_num_threads(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # tokenizer threads would compete with torch's
    return threads


def _device_map(device: str) -> dict[str, Any]:
    if device == "cpu":
        return {"": "cpu"}
    from accelerate import PartialState

    return {"": PartialState().local_process_index}  # one GPU per process under accelerate launch (DDP)


def train(data: list[str | os.PathLike[str]], model: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
          config: TrainConfig, template: str | None = None, eval_data: list[str | os.PathLike[str]] | None = None,
          resume: bool = False, overwrite: bool = False, template_args: dict[str, Any] | None = None,
          train_on: str = "all", progress: ProgressFn | None = None) -> TrainResult:
    """Train a LoRA adapter on a 4-bit base and write OUT_DIR (see trainers/outputs.py)."""
    started = time.perf_counter()
    out = Path(out_dir)
    device, precision = pick_device(config)
    checkpoint = outputs.prepare_dir(out, resume, overwrite)
    source = resolve_model(model)
    tokenizer = load_tokenizer(source.path, trust_remote_code=config.trust_remote_code)
    preparer = Preparer(tokenizer, template, config.max_length, config.overlong, template_args=template_args,
                        train_on=train_on)
    train_data = preparer.load(data)
    eval_set = preparer.load(eval_data) if eval_data else None
    _, distinct = choose_pad(tokenizer, train_data.eos)
    info = _run_info(out, source, config, train_data, eval_set, tokenizer, device, precision, distinct)
    if device == "cpu":
        info["cpu_threads"] = cpu_threads(config)
    if checkpoint:
        outputs.check_resume(out, info)
    if _is_main():
        outputs.write_start(out, info, config.to_yaml(), train_data.templates[0].source)
    base = load_model(source, precision=precision, device_map=_device_map(device),
                      quantization_config=quantization(config, precision),
                      attn_implementation=config.attn_implementation, trust_remote_code=config.trust_remote_code)
    if device == "cpu":
        keep_training_layout(base)
    if config.packing or config.padding_free:
        check_no_leakage(base, tokenizer, option("packing" if config.packing else "padding_free", True))
    trainer = build_trainer(base, tokenizer, train_data, eval_set, config, out, precision, device, progress)
    verify_labels(trainer, train_data.masks, _stop_ids(tokenizer, train_data), config.packing)
    try:
        with oom_hint():
            trainer.train(resume_from_checkpoint=checkpoint)
    except KeyboardInterrupt:  # the run directory says so, rather than "running" for ever
        if _is_main():
            outputs.write_interrupted(out, info, trainer.state.global_step)
        raise
    metrics: dict[str, Any] = {}
    if trainer.is_world_process_zero():
        trainer.model.save_pretrained(out)  # adapter only, safetensors
        tokenizer.save_pretrained(out)
        metrics = outputs.write_final(out, info, trainer.state.log_history, time.perf_counter() - started)
    return TrainResult(out, trainer.state.global_step, metrics, info)


def build_trainer(model: Any, tokenizer: Any, data: TrainData, eval_set: TrainData | None, config: TrainConfig,
                  out: Path, precision: str, device: str, progress: ProgressFn | None) -> Any:
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(**sft_arguments(config, out, precision, device, eval_set is not None,
                                     eos=_single_token(tokenizer, data.eos)))
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=config.target_modules, bias="none", task_type="CAUSAL_LM")
    callbacks = [progress_callback(progress)] if progress else []
    trainer = SFTTrainer(model=model, args=args, train_dataset=data.dataset(),
                         eval_dataset=eval_set.dataset() if eval_set else None, processing_class=tokenizer,
                         peft_config=lora, callbacks=callbacks)
    if progress:  # our bar shows steps, loss and ETA; transformers' printed log dicts would interleave with it
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    return trainer


def sft_arguments(config: TrainConfig, out: Path, precision: str, device: str, has_eval: bool,
                  eos: str | None = None) -> dict[str, Any]:
    """TrainConfig → SFTConfig keyword arguments (TRL 1.x / transformers 5 names)."""
    padding_free = config.padding_free and not config.packing
    return dict(
        output_dir=str(out / outputs.CHECKPOINTS), report_to=[], disable_tqdm=True, seed=config.seed,
        use_cpu=device == "cpu", bf16=precision == "bf16", fp16=precision == "fp16",
        per_device_train_batch_size=config.batch_size, per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum, learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler, warmup_steps=config.warmup_ratio,
        num_train_epochs=config.epochs, max_steps=config.max_steps or -1, optim=config.optim,
        weight_decay=config.weight_decay, max_grad_norm=config.max_grad_norm,
        activation_checkpointing=config.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if config.gradient_checkpointing else None,
        logging_steps=config.logging_steps, save_strategy="steps", save_steps=config.save_steps,
        save_total_limit=config.save_total_limit, eval_strategy="steps" if has_eval else "no",
        eval_steps=config.eval_steps or config.save_steps,
        # data: already tokenized with loss masks; lengths were enforced when it was prepared
        completion_only_loss=True, max_length=config.max_length if config.packing else None,
        packing=config.packing, packing_strategy="bfd", padding_free=padding_free,
        train_sampling_strategy="group_by_length" if config.group_by_length and not config.packing else "random",
        eos_token=eos, ddp_find_unused_parameters=False, dataloader_num_workers=0,
    )


def progress_callback(progress: ProgressFn) -> Any:
    """A TrainerCallback that turns the trainer's state into TrainProgress events."""
    from transformers import TrainerCallback

    class _Progress(TrainerCallback):
        def __init__(self) -> None:
            self.t0, self.tokens0, self.tokens, self.loss = time.perf_counter(), None, 0, None

        def _emit(self, event: str, state: Any, eval_loss: float | None = None) -> None:
            done = self.tokens - (self.tokens0 or 0)
            progress(TrainProgress(event, state.global_step, state.max_steps, self.loss, int(done),
                                   time.perf_counter() - self.t0, eval_loss))

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.t0 = time.perf_counter()
            seen = [e["num_tokens"] for e in state.log_history if "num_tokens" in e]
            self.tokens0 = self.tokens = seen[-1] if seen else 0
            self._emit("begin", state)

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self._emit("step", state)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
            logs = logs or {}
            self.loss = logs.get("loss", self.loss)
            self.tokens = logs.get("num_tokens", self.tokens)
            self._emit("log", state, logs.get("eval_loss"))

        def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self._emit("end", state)

    return _Progress()


def keep_training_layout(model: Any) -> None:
    """bitsandbytes repacks a CPU 4-bit layer for its AVX512-BF16 inference kernel the first time it
    runs in eval mode without grad (an evaluation during training does that), and never packs it
    back; training through the inference layout is many times slower. Keep the training layout."""
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


@contextmanager
def oom_hint() -> Iterator[None]:
    import torch

    try:
        yield
    except torch.OutOfMemoryError:
        raise TrainError(
            "CUDA out of memory",
            hint="lower --batch-size and raise --grad-accum by the same factor (same effective batch), lower "
                 "--max-length, turn on --gradient-checkpointing, or use --optim paged_adamw_8bit; "
                 "`sftdata plan --model M --gpu G` estimates what fits") from None


def _is_main() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def _single_token(tokenizer: Any, text: str) -> str | None:
    return text if text in tokenizer.get_vocab() else None


def _stop_ids(tokenizer: Any, data: TrainData) -> set[int]:
    ids = {tokenizer.eos_token_id}
    for ref in data.templates:
        token = tokenizer.convert_tokens_to_ids(ref.eos) if _single_token(tokenizer, ref.eos) else None
        if token is not None:
            ids.add(token)
    return {i for i in ids if i is not None}


def _run_info(out: Path, source: ModelSource, config: TrainConfig, data: TrainData, eval_set: TrainData | None,
              tokenizer: Any, device: str, precision: str, pad_distinct: bool) -> dict[str, Any]:
    template = data.templates[0]
    eos_id = tokenizer.convert_tokens_to_ids(template.eos) if _single_token(tokenizer, template.eos) else None
    return {
        "sftdata_train": 1, "status": "running", "created": outputs._now(), "out_dir": str(out),
        "base_model": source.as_dict(),
        "template": {**template.as_dict(), "file": outputs.TEMPLATE if template.source is not None else None},
        "templates": [t.as_dict() for t in data.templates],
        "eos": template.eos, "eos_id": eos_id, "pad": tokenizer.pad_token, "pad_id": tokenizer.pad_token_id,
        "pad_distinct_from_eos": pad_distinct,
        "data": data.summary(), "eval_data": eval_set.summary() if eval_set else None,
        "config": config.model_dump(mode="json"), "device": device, "precision": precision,
        "versions": outputs.versions(),
    }
