"""`sftdata plan`: peak GPU memory of a QLoRA run, from the model's config alone, before anything loads.

The formula (bytes; b = per-device batch, s = sequence length, L layers, h hidden size, I MLP size,
V vocabulary, kv = key/value width (kv heads x head dim), q = query width, E experts, r = LoRA rank):

    linear params   P = L x (2·h·q + 2·h·kv + 3·h·I·E)                  (attention + gated MLP)
    4-bit weights   P x (4 + c) / 8,  c = 0.127 bits with double quantization (8-bit absmax per 64
                    weights + fp32 per 256 blocks), 0.5 without (fp32 absmax per 64 weights)
    16-bit weights  (V·h embeddings [+ V·h LM head when untied] + norms) x w,  w = 2 (4 on CPU, fp32)
    LoRA params     R = L x r x (2(h+q) + 2(h+kv) + 3(h+I)·E)  over the targeted projections
    LoRA state      R x (a + a + o): a = 2 bytes (TRL keeps a QLoRA adapter in bf16; 4 = fp32 with
                    --no-4bit), the same again for gradients, optimizer states o = 2a (torch AdamW keeps
                    its two moments in the parameter dtype), 8 (bitsandbytes 32-bit AdamW), 2 (8-bit), 0 (adafactor)
    activations     with gradient checkpointing: b·s·h·w per layer (its saved input) + one layer live
                    without:                     b·s·A·w per layer, A = 7h + 2kv + 4I + (3h if LoRA dropout)
                    (norm inputs/outputs, attention q/k/v/out from SDPA/flash — no s² term —, the LoRA
                    inputs, the SwiGLU gate/up/product)
    LM head         min(b·s, 4096)·min(V, 32768)·4 x 2   (TRL's fused LM head scores tiles of 4,096 tokens x
                    32,768 vocabulary entries in fp32, the backward recomputes one; no full logits)
    dequantization  2·h·max(I, q)·w   (a 4-bit weight unpacked for its matmul, forward or backward)
    peak            weights + (LoRA state + activations + LM head + dequantization) x 1.10 (allocator
                    slack) + 0.75 GiB (CUDA context, cuBLAS workspace; 0 on CPU); with a paged optimizer
                    its states and the activations need not be resident together, so the larger counts.

Checked in tests/test_train_plan.py against LLaMA-Factory's QLoRA table and the QLoRA paper.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import TrainError
from .config import TrainConfig

GIB = 1024**3
CONTEXT_BYTES = 0.75 * GIB
SLACK = 1.10
LM_HEAD_TILE = (4096, 32768)  # tokens x vocabulary, trl.kernels.chunked_logprob
# Memory a training process can use, GiB (what the driver reports as total, less its reserve).
GPUS: dict[str, float] = {"t4": 15.0, "a100-40": 39.4, "a100-80": 79.1, "h100": 79.1}
_OPTIMIZER_BYTES = {"paged_adamw_32bit": 8.0, "adamw_8bit": 2.0, "paged_adamw_8bit": 2.0, "adafactor": 0.0}


@dataclass(frozen=True, slots=True)
class Arch:
    """The architecture numbers the estimate needs (a decoder with a gated MLP, like Llama)."""

    vocab: int
    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    tied: bool = False
    experts: int = 1

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Arch:
        c = config.get("text_config") or config
        try:
            hidden, heads = int(c["hidden_size"]), int(c["num_attention_heads"])
            return cls(vocab=int(c["vocab_size"]), hidden=hidden, layers=int(c["num_hidden_layers"]),
                       intermediate=int(c.get("intermediate_size") or 4 * hidden), heads=heads,
                       kv_heads=int(c.get("num_key_value_heads") or heads),
                       head_dim=int(c.get("head_dim") or hidden // heads),
                       tied=bool(c.get("tie_word_embeddings", config.get("tie_word_embeddings", False))),
                       experts=int(c.get("num_local_experts") or c.get("num_experts") or 1))
        except (KeyError, TypeError, ValueError) as error:
            raise TrainError(f"the model config lacks what the estimate needs: {error}") from None

    @property
    def q(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def linear_params(self) -> int:
        h = self.hidden
        return self.layers * (2 * h * self.q + 2 * h * self.kv + 3 * h * self.intermediate * self.experts)

    @property
    def other_params(self) -> int:
        head = 0 if self.tied else self.vocab * self.hidden
        return self.vocab * self.hidden + head + (2 * self.layers + 1) * self.hidden

    @property
    def params(self) -> int:
        return self.linear_params + self.other_params

    def lora_params(self, r: int, targets: list[str] | str) -> int:
        h = self.hidden
        per = {"q_proj": h + self.q, "k_proj": h + self.kv, "v_proj": h + self.kv, "o_proj": self.q + h}
        mlp = {"gate_proj": h + self.intermediate, "up_proj": h + self.intermediate,
               "down_proj": self.intermediate + h}
        names = list(per) + list(mlp) if targets == "all-linear" else list(targets)
        total = sum(per.get(n, 0) + mlp.get(n, 0) * self.experts for n in names)
        return self.layers * r * total


@dataclass(frozen=True, slots=True)
class Estimate:
    """Bytes per part of the peak, and the total."""

    weights_4bit: float
    weights_16bit: float
    lora: float
    activations: float
    lm_head: float
    overhead: float
    total: float
    params: int
    lora_params: int

    def gib(self) -> dict[str, float]:
        return {k: round(v / GIB, 2) if isinstance(v, float) else v for k, v in asdict(self).items()}


def estimate(arch: Arch, config: TrainConfig, *, batch: int | None = None, seq: int | None = None,
             device: str = "cuda", precision: str | None = None) -> Estimate:
    b, s = batch or config.batch_size, seq or config.max_length
    precision = precision or config.precision
    w = 4 if precision == "fp32" or (precision == "auto" and device == "cpu") else 2
    bits = 4 + (0.127 if config.double_quant else 0.5)
    q4 = arch.linear_params * bits / 8 if config.load_in_4bit else arch.linear_params * w
    q16 = arch.other_params * w
    lora_n = arch.lora_params(config.lora_r, config.target_modules)
    a = 2 if config.load_in_4bit else 4
    optimizer = lora_n * _OPTIMIZER_BYTES.get(config.optim, 2.0 * a)
    act = activation_bytes(arch, config, b, s, w)
    head = min(b * s, LM_HEAD_TILE[0]) * min(arch.vocab, LM_HEAD_TILE[1]) * 4 * 2
    dequant = 2 * arch.hidden * max(arch.intermediate, arch.q) * w if config.load_in_4bit else 0
    resident = max(optimizer, act) if config.optim.startswith("paged_") else optimizer + act
    dynamic = lora_n * 2 * a + resident + head + dequant
    overhead = dynamic * (SLACK - 1) + (CONTEXT_BYTES if device != "cpu" else 0)
    total = q4 + q16 + dynamic + overhead
    return Estimate(float(q4), float(q16), float(lora_n * 2 * a + optimizer), act, float(head), float(overhead),
                    float(total), arch.params, lora_n)


def activation_bytes(arch: Arch, config: TrainConfig, b: int, s: int, w: int) -> float:
    h, per_layer = arch.hidden, 7 * arch.hidden + 2 * arch.kv + 4 * arch.intermediate
    if config.lora_dropout > 0:
        per_layer += 3 * h
    if config.gradient_checkpointing:
        return float(b * s * w * (arch.layers * h + per_layer))
    return float(b * s * w * arch.layers * per_layer)


@dataclass(slots=True)
class Plan:
    arch: Arch
    estimate: Estimate
    gpu: str | None
    capacity_gib: float | None
    fits: bool | None
    batch: int | None  # recommended per-device batch
    grad_accum: int | None  # keeps the effective batch
    note: str | None = None
    config: TrainConfig | None = None  # what was estimated, for showing the batch and length

    def as_dict(self) -> dict[str, Any]:
        return {"arch": asdict(self.arch), "params": self.arch.params, "estimate_gib": self.estimate.gib(),
                "gpu": self.gpu, "capacity_gib": self.capacity_gib, "fits": self.fits,
                "recommended_batch": self.batch, "recommended_grad_accum": self.grad_accum, "note": self.note}


def plan(arch: Arch, config: TrainConfig, gpu: str | None = None) -> Plan:
    """Estimate at the config's batch; with a GPU, say whether it fits and the largest batch that does."""
    est = estimate(arch, config)
    if gpu is None:
        return Plan(arch, est, None, None, None, None, None, config=config)
    if gpu not in GPUS:
        raise TrainError(f"unknown GPU {gpu!r}", hint=f"use one of {', '.join(GPUS)}")
    capacity = GPUS[gpu] * GIB
    effective = config.effective_batch
    fitting = [b for b in range(1, effective + 1) if effective % b == 0
               and estimate(arch, config, batch=b).total <= capacity]
    note = None
    if gpu == "t4" and config.precision == "bf16":
        note = "a T4 has no bf16: use --precision fp16"
    if not fitting:
        note = ("even batch 1 does not fit: shorten --max-length, turn on --gradient-checkpointing, lower "
                "--lora-r or use --optim paged_adamw_8bit")
        return Plan(arch, est, gpu, GPUS[gpu], False, None, None, note, config)
    best = max(fitting)
    return Plan(arch, est, gpu, GPUS[gpu], est.total <= capacity, best, effective // best, note, config)


def read_arch(model: str | os.PathLike[str]) -> Arch:
    """Architecture numbers from a model directory's config.json, a .gguf header, or a hub id's config."""
    text = os.fspath(model)
    path = Path(text)
    if path.suffix.lower() == ".gguf":
        return Arch.from_config(_gguf_config(path))
    if path.is_dir():
        path = path / "config.json"
    if path.is_file():
        try:
            return Arch.from_config(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as error:
            raise TrainError(f"cannot read the model config: {error}", file=str(path)) from None
    return Arch.from_config(_hub_config(text))


def _gguf_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise TrainError("no such GGUF file", file=str(path))
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name).to_dict()
    except Exception as error:  # unsupported architectures raise various types
        raise TrainError(f"cannot read the GGUF header: {type(error).__name__}: {error}", file=str(path)) from None


def _hub_config(model_id: str) -> dict[str, Any]:
    try:
        from huggingface_hub import hf_hub_download

        return json.loads(Path(hf_hub_download(model_id, "config.json")).read_text(encoding="utf-8"))
    except Exception as error:  # offline, unknown repo, gated
        raise TrainError(f"cannot fetch config.json: {type(error).__name__}: {error}", file=model_id,
                         hint="give a local model directory or .gguf file when offline") from None
