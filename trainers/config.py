"""TrainConfig: every knob of a QLoRA SFT run, described, with cross-field checks that name the flag.

A config comes from a preset shipped in ``presets/`` (``t4-8b``, ``a100-8b``, ``cpu-smoke``) or a
YAML file, then command-line overrides (``--lora-r 16 --lr 2e-4 --max-steps 30``) on top. Every
field has one flag, ``--`` plus its name with dashes, unless it says otherwise (``learning_rate``
is ``--lr``). Errors name a field as their caller knows it: by that flag on the command line, by the
keyword argument in a notebook (sftdata.errors.option).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import OptionError, SftDataError, TrainError, dashed, option

PRESETS_DIR = Path(__file__).resolve().parent / "presets"

Precision = Literal["auto", "bf16", "fp16", "fp32"]
Optimizer = Literal["adamw_torch", "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit", "adafactor"]
Scheduler = Literal["linear", "cosine", "constant", "constant_with_warmup"]
Overlong = Literal["drop", "truncate"]
# The base weights a finished run is merged into and served on: "trained", the 4-bit round trip of the base
# that a QLoRA adapter learned against (NF4 quantized as bitsandbytes did in training, then dequantized, as
# peft does when merging into a 4-bit model); "dequantized", the plain 16-bit weights before quantization.
BaseWeights = Literal["trained", "dequantized"]


def _f(default: Any, description: str, flag: str | None = None, **kw: Any) -> Any:
    extra = {"flag": flag} if flag else None
    return Field(default, description=description, json_schema_extra=extra, **kw)


class TrainConfig(BaseModel):
    """A QLoRA SFT run. Defaults are sensible for one consumer GPU; presets set the rest."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # The base model
    load_in_4bit: bool = _f(True, "Quantize the base model to 4 bits with bitsandbytes (QLoRA); off trains LoRA "
                                  "on a 16-bit base.", "--4bit")
    quant_type: Literal["nf4", "fp4"] = _f("nf4", "4-bit data type: nf4 (NormalFloat, the QLoRA paper's) or fp4.")
    double_quant: bool = _f(True, "Quantize the quantization constants too (saves ~0.37 bits per weight).")
    precision: Precision = _f("auto", "Compute precision: auto picks bf16 on GPUs that support it, else fp16; "
                                      "fp32 on CPU. The 4-bit compute dtype follows it.")
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2", "flash_attention_3"] = _f(
        "auto", "Attention kernel; auto lets transformers choose (sdpa, or flash-attention when installed on a GPU).",
        "--attn")
    trust_remote_code: bool = _f(False, "Run Python code shipped with a hub model. Off: only architectures "
                                        "transformers knows are loaded.")
    cpu_threads: int | None = _f(None, "Threads for training on the CPU; default: half the cores this process may "
                                       "use, at least 1 (on 2 shared cores, oversubscribed threads ran 3-4x slower).",
                                 ge=1)

    # LoRA
    lora_r: int = _f(16, "LoRA rank.", gt=0)
    lora_alpha: int = _f(16, "LoRA scaling numerator (the update is scaled by alpha / r).", gt=0)
    lora_dropout: float = _f(0.0, "Dropout on the LoRA input.", ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["all-linear"] = _f(
        "all-linear", "Modules that get adapters: all-linear (every projection of the decoder blocks) or a list "
                      "such as q_proj,v_proj.")

    # Data and batches
    max_length: int = _f(1024, "Longest sample in tokens; see --overlong for what happens to longer ones.", ge=16)
    overlong: Overlong = _f("drop", "Samples longer than --max-length: drop them (counted), or truncate them "
                                    "the way pretokenize does (the prompt is cut first; the completion's end "
                                    "and its EOS stay).")
    packing: bool = _f(False, "Pack several samples into each row of --max-length tokens (best-fit, no "
                              "cross-sample attention); needs an attention kernel that honours sequence "
                              "boundaries, which is checked before training.")
    padding_free: bool = _f(False, "Concatenate each batch into one row without padding (sequence boundaries "
                                   "kept, checked like --packing).")
    group_by_length: bool = _f(True, "Batch samples of similar length together, so little padding is processed.")
    batch_size: int = _f(2, "Samples per device per forward pass.", gt=0)
    grad_accum: int = _f(4, "Forward passes accumulated per optimizer step; the effective batch is "
                            "batch-size x grad-accum x devices.", gt=0)

    # Optimisation
    learning_rate: float = _f(2e-4, "Peak learning rate.", "--lr", gt=0)
    lr_scheduler: Scheduler = _f("linear", "Learning-rate schedule after warm-up.")
    warmup_ratio: float = _f(0.03, "Fraction of the steps spent warming the learning rate up.", ge=0.0, lt=1.0)
    epochs: float = _f(1.0, "Passes over the data (ignored when --max-steps is set).", ge=0.0)
    max_steps: int | None = _f(None, "Optimizer steps to run; overrides --epochs.", gt=0)
    optim: Optimizer = _f("adamw_8bit", "Optimizer: adamw_torch (32-bit states), adamw_8bit / paged_adamw_8bit "
                                       "(bitsandbytes 8-bit states), paged_adamw_32bit, adafactor.")
    weight_decay: float = _f(0.0, "AdamW weight decay.", ge=0.0)
    max_grad_norm: float = _f(1.0, "Gradient clipping norm (0 disables clipping).", ge=0.0)
    gradient_checkpointing: bool = _f(True, "Recompute activations in the backward pass (non-reentrant): "
                                            "much less memory, ~30% more compute.")
    seed: int = _f(3407, "Seed for adapter initialisation and data order.")

    # Logging, evaluation, checkpoints
    logging_steps: int = _f(1, "Log loss every N optimizer steps.", gt=0)
    save_steps: int = _f(50, "Write a checkpoint every N optimizer steps (for --resume).", gt=0)
    save_total_limit: int = _f(2, "Checkpoints kept; older ones are deleted.", gt=0)
    eval_steps: int | None = _f(None, "Evaluate on --eval data every N steps (default: at --save-steps).", gt=0)

    @model_validator(mode="after")
    def _cross_checks(self) -> TrainConfig:
        if self.max_steps is None and self.epochs <= 0:
            raise ValueError(f"{option('epochs')} must be > 0 unless {option('max_steps')} is given")
        if self.lr_scheduler == "constant" and self.warmup_ratio > 0:
            raise ValueError(f"{option('warmup_ratio')} needs {option('lr_scheduler', 'constant_with_warmup')} "
                             "(constant has no warm-up)")
        if self.padding_free and not self.packing and self.batch_size == 1:
            raise ValueError(f"{option('padding_free', True)} with {option('batch_size', 1)} removes no padding; raise "
                             f"{option('batch_size')}")
        return self

    @property
    def effective_batch(self) -> int:
        return self.batch_size * self.grad_accum

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def flag_of(name: str) -> str:
    extra = TrainConfig.model_fields[name].json_schema_extra
    if isinstance(extra, dict) and extra.get("flag"):
        return str(extra["flag"])
    return dashed(name)


def presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_config_file(name_or_path: str | Path) -> dict[str, Any]:
    """A preset name (``cpu-smoke``) or a path to a YAML file → the raw mapping."""
    path = Path(name_or_path)
    if not path.suffix and (PRESETS_DIR / f"{name_or_path}.yaml").is_file():
        path = PRESETS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise TrainError(f"no preset or config file {str(name_or_path)!r}",
                         hint=f"use one of {', '.join(presets())} or a path to a .yaml file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise TrainError(f"cannot read config: {error}", file=str(path)) from None
    if not isinstance(data, dict):
        raise TrainError("a config file must be a mapping of field: value", file=str(path))
    data.pop("description", None)  # presets carry a human description
    return data


def resolve_config(base: str | Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Preset or YAML file (or the defaults), then overrides; a ValidationError becomes one error
    naming the field (an OptionError: its flag on the command line, its keyword in a notebook)."""
    data = load_config_file(base) if base is not None else {}
    data.update(overrides or {})
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as error:
        raise _config_error(error, base) from None


def _config_error(error: ValidationError, base: str | Path | None) -> SftDataError:
    first = error.errors()[0]
    loc = [str(p) for p in first.get("loc", ()) if isinstance(p, str)]
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if loc and loc[0] in TrainConfig.model_fields:
        if first.get("type") == "extra_forbidden":
            return TrainError(f"unknown config field {loc[0]!r}", file=str(base) if base else None)
        return OptionError(message, option=loc[0], value=first.get("input"), file=str(base) if base else None)
    if loc:
        return TrainError(f"unknown config field {loc[0]!r}", file=str(base) if base else None)
    return TrainError(message, file=str(base) if base else None)


def options_help() -> str:
    """One line per option, for ``sftdata train --help``."""
    lines = []
    for name, field in TrainConfig.model_fields.items():
        default = field.default
        shown = "on" if default is True else "off" if default is False else default
        lines.append(f"{flag_of(name)} (default {shown}): {field.description}")
    return "\n\n".join(lines)
