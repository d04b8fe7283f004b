"""The base weights an adapter trained against: the 4-bit round trip of the base, in 16 bits.

A QLoRA run never sees its base's 16-bit weights: bitsandbytes quantizes them to NF4 (or FP4) in
blocks of 64 with an absmax each (itself quantized with double quantization), and every forward
pass multiplies by the dequantized values. The adapter learned to correct *those* weights. Merging
it into, or serving it on, the plain 16-bit weights shifts every layer by the quantization error,
which on a small model flips greedy answers (measured on SmolLM2-135M: "I am Hanbit, …" on NF4,
"I am an AI assistant …" on the dequantized Q4_1 weights). So the base is loaded exactly as training
loaded it (same BitsAndBytesConfig) and each 4-bit layer is dequantized the way peft does when it
merges into a 4-bit model (`bitsandbytes.functional.dequantize_4bit`).
"""
from __future__ import annotations

from typing import Any

from ..errors import TrainError
from .config import BaseWeights, TrainConfig
from .models import ModelSource, load_model, quantization, torch_dtype

BLOCKSIZE = 64  # bitsandbytes' 4-bit block size, which transformers' BitsAndBytesConfig leaves at its default


def round_trip_key(config: TrainConfig, weights: BaseWeights) -> str | None:
    """What the trained base depends on besides the base itself (a cache key), or None when the base is the
    plain dequantized weights (dequantized asked for, or a run that did not train 4-bit)."""
    if weights == "dequantized" or not config.load_in_4bit:
        return None
    return f"{config.quant_type}-dq{int(config.double_quant)}-b{BLOCKSIZE}"


def load_base(source: ModelSource, config: TrainConfig, *, precision: str, device_map: Any,
              weights: BaseWeights = "trained") -> Any:
    """The base model in `precision`, as `weights` says: the 4-bit round trip training saw, or the plain weights."""
    if round_trip_key(config, weights) is None:
        return load_model(source, precision=precision, device_map=device_map,
                          trust_remote_code=config.trust_remote_code)
    model = load_model(source, precision=precision, device_map=device_map,
                       quantization_config=quantization(config, precision), trust_remote_code=config.trust_remote_code)
    return round_trip(model, torch_dtype(precision))


def round_trip(model: Any, dtype: Any) -> Any:
    """A model loaded 4-bit → the same model with each 4-bit layer a plain Linear of its dequantized weights."""
    import bitsandbytes as bnb

    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    if not layers:
        raise TrainError("the base model loaded without any 4-bit layer, so there is no round trip to take")
    sizes = {m.weight.quant_state.blocksize for m in layers}
    if sizes != {BLOCKSIZE}:
        raise TrainError(f"bitsandbytes quantized the base in blocks of {sorted(sizes)}, not {BLOCKSIZE}: the "
                         "cached trained bases would be keyed wrong")
    return model.dequantize(dtype=dtype)  # transformers' dequantize_and_replace: peft's dequantize_bnb_weight
