"""The base a QLoRA adapter trained against: the 4-bit round trip of its base (sftdata.trainers.roundtrip).

Real parts: SmolLM2-135M's Q4_1 GGUF dequantized (cached), loaded 4-bit by transformers + bitsandbytes with a
run's own settings, and an independent oracle: bitsandbytes' quantize_4bit / dequantize_4bit called directly on
the plain weights with the block size, quant type and double quantization named in the test.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from sftdata.trainers.config import TrainConfig, resolve_config
from sftdata.trainers.roundtrip import round_trip_key


def test_the_cache_key_names_every_quantization_setting() -> None:
    smoke = resolve_config("cpu-smoke", {})
    assert round_trip_key(smoke, "trained") == "nf4-dq1-b64"
    assert round_trip_key(smoke, "dequantized") is None
    assert round_trip_key(smoke.model_copy(update={"quant_type": "fp4", "double_quant": False}), "trained") == "fp4-dq0-b64"
    assert round_trip_key(smoke.model_copy(update={"load_in_4bit": False}), "trained") is None  # LoRA on 16 bits


@pytest.mark.slow
@pytest.mark.parametrize("quant_type,double_quant", [("nf4", True), ("fp4", False)])
def test_the_trained_base_is_bitsandbytes_round_trip_of_the_plain_weights(
        quant_type: str, double_quant: bool, smollm2_gguf: Path, sftdata_cache: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import bitsandbytes.functional as F
    import torch

    from sftdata.trainers.models import resolve_model
    from sftdata.trainers.roundtrip import load_base

    monkeypatch.setenv("SFTDATA_CACHE", str(sftdata_cache))
    torch.set_num_threads(1)
    source = resolve_model(smollm2_gguf)
    config: TrainConfig = resolve_config("cpu-smoke", {"quant_type": quant_type, "double_quant": double_quant})
    plain = load_base(source, config, precision="fp32", device_map={"": "cpu"}, weights="dequantized")
    trained = load_base(source, config, precision="fp32", device_map={"": "cpu"}, weights="trained")
    assert not getattr(trained, "hf_quantizer", None) and "quantization_config" not in trained.config.to_dict()
    for name in ("model.layers.0.self_attn.q_proj", "model.layers.29.mlp.down_proj"):
        w = plain.get_submodule(name).weight.detach()
        packed, state = F.quantize_4bit(w, blocksize=64, compress_statistics=double_quant, quant_type=quant_type)
        oracle = F.dequantize_4bit(packed, state)
        got = trained.get_submodule(name).weight.detach()
        assert type(trained.get_submodule(name)) is torch.nn.Linear and got.dtype == torch.float32
        assert torch.equal(got, oracle), name
        assert not torch.equal(got, w) and (got - w).abs().max() < w.abs().max() / 4  # a round trip, not noise
    # what bitsandbytes never quantizes stays as it was: embeddings (tied to the LM head) and norms
    assert torch.equal(trained.model.embed_tokens.weight, plain.model.embed_tokens.weight)
    assert torch.equal(trained.model.norm.weight, plain.model.norm.weight)
