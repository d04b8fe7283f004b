"""A GGUF model dequantized once into a safetensors folder that transformers loads like any other.

`train` (sftdata.trainers.models) quantizes that folder to NF4 for QLoRA, `merge`/`export-gguf`/`serve-check`
start from it for the base the adapter trained against (its 4-bit round trip, or these weights with
`--base-weights dequantized`), and `synth`'s local backend generates with it: one
conversion, cached under ``$SFTDATA_CACHE/models/<sha256 of the file>`` (weights in bf16, the tokenizer
beside them).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .errors import TrainError
from .tokenize.load import cache_dir, load_tokenizer
from .writers import publish_dir


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def convert_gguf(path: Path, digest: str | None = None, cache: Path | None = None) -> Path:
    """Dequantize a GGUF file into a safetensors folder (bf16) with its tokenizer; cached by file hash."""
    digest = digest or file_sha256(path)
    root = cache or cache_dir() / "models"
    target = root / digest[:32]
    if (target / "sftdata_source.json").is_file():
        return target
    import torch
    from transformers import AutoModelForCausalLM, GgufConfig

    try:  # dequantize=True: plain dense weights, never GGUF blocks kept for a matmul kernel
        model = AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, dtype=torch.float32,
            quantization_config=GgufConfig(gguf_file=path.name, dequantize=True))
    except Exception as error:  # transformers raises many types for an unsupported GGUF architecture
        raise TrainError(f"cannot load the GGUF model: {type(error).__name__}: {error}", file=str(path)) from None
    model.hf_quantizer = None  # nothing quantized is left; the GGUF origin must not follow into config.json
    model.config.__dict__.pop("quantization_config", None)
    model.to(torch.bfloat16)

    def fill(staging: Path) -> None:
        model.save_pretrained(staging)
        load_tokenizer(path).save_pretrained(staging)
        source = {"gguf": str(path.resolve()), "sha256": digest, "bytes": path.stat().st_size}
        (staging / "sftdata_source.json").write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")

    return publish_dir(target, fill, "sftdata_source.json")
