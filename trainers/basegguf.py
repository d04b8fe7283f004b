"""The base a LoRA adapter is served on: what training trained against, not a quantized file.

`train` dequantizes a GGUF base once (sftdata.trainers.models.convert_gguf) and trains the adapter on
those 16-bit weights. A small adapter is sensitive to the quantization error of a Q4 base: on
SmolLM2-135M's Q4_1 GGUF the identity run answers "What is your name?" with the new name but "Who are
you?" without it, while on the 16-bit weights it answers both. So `serve-check RUN_DIR` serves the
adapter on a 16-bit GGUF of the same base by default, converted once from the dequantized folder with
llama.cpp's convert_hf_to_gguf.py and cached by the base's hash.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ..tokenize.load import cache_dir
from .converter import find_llama_cpp, read_metadata, run_converter

SIXTEEN_BIT = {0: "F32", 1: "F16", 32: "BF16"}  # llama.cpp's general.file_type values that quantize nothing

QUANT_ADVICE = ("serve the merged model (`sftdata export-gguf RUN -o OUT.gguf --merge`), or quantize after "
                "merging (`--merge --outtype q8_0`)")


def quantized_type(path: Path) -> str | None:
    """The GGUF file's quantization (e.g. "file_type 3"), or None for F32/F16/BF16 weights."""
    file_type = read_metadata(path, ("general.file_type",)).get("general.file_type")
    if file_type is None or int(file_type) in SIXTEEN_BIT:
        return None
    return f"file_type {int(file_type)}"


def sixteen_bit_base(info: dict[str, Any], llama_cpp: Any = None) -> Path:
    """An f16 GGUF of the run's base, made from the dequantized folder training used (cached)."""
    from .models import convert_gguf, file_sha256

    base = info["base_model"]
    gguf = Path(base["spec"])
    digest = base.get("sha256") or file_sha256(gguf)
    target = cache_dir() / "gguf-f16" / f"{digest[:32]}.f16.gguf"
    if target.is_file():
        return target
    folder = Path(base["path"]) if base.get("path") and Path(base["path"]).is_dir() else convert_gguf(gguf, digest)
    tree = find_llama_cpp(llama_cpp)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.tmp-")
    os.close(fd)
    try:
        run_converter(tree, [str(tree.script("convert_hf_to_gguf.py")), str(folder), "--outtype", "f16",
                             "--outfile", tmp], "convert_hf_to_gguf.py")
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target
