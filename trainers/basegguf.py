"""The base a LoRA adapter is served on: what training trained against, not a quantized file.

`train` dequantizes a GGUF base once (sftdata.dequantize) and, for QLoRA, quantizes those weights to
NF4 again; the adapter learned against that 4-bit round trip (sftdata.trainers.roundtrip). A small
adapter is sensitive to the difference: on SmolLM2-135M's Q4_1 GGUF an Alpaca identity run answers
"Who are you?" with its new name in-process (NF4) and without it on the dequantized Q4_1 weights. So
`serve-check RUN_DIR` and a LoRA `export-gguf` serve the adapter on a 16-bit GGUF of the trained base
by default (the round trip; the plain dequantized weights with `base_weights="dequantized"`),
converted once with llama.cpp's convert_hf_to_gguf.py and cached by the base's hash and the
quantization settings.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..tokenize.load import cache_dir, load_tokenizer
from .config import BaseWeights, TrainConfig
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


def trained_base_differs(info: dict[str, Any], weights: BaseWeights) -> bool:
    """Whether the base the adapter trained against is not the run's base GGUF file as it stands."""
    from .roundtrip import round_trip_key

    gguf = Path(info["base_model"]["spec"])
    key = round_trip_key(TrainConfig.model_validate(info["config"]), weights)
    return key is not None or quantized_type(gguf) is not None


def sixteen_bit_base(info: dict[str, Any], llama_cpp: Any = None, weights: BaseWeights = "trained") -> Path:
    """An f16 GGUF of the run's base as the adapter trained against it (cached): the 4-bit round trip of the
    dequantized weights for a QLoRA run (`trained`), or the dequantized weights themselves."""
    from ..dequantize import convert_gguf, file_sha256
    from .roundtrip import round_trip_key

    base = info["base_model"]
    gguf = Path(base["spec"])
    digest = base.get("sha256") or file_sha256(gguf)
    key = round_trip_key(TrainConfig.model_validate(info["config"]), weights)
    target = cache_dir() / "gguf-f16" / (f"{digest[:32]}.{key}.f16.gguf" if key else f"{digest[:32]}.f16.gguf")
    if target.is_file():
        return target
    folder = Path(base["path"]) if base.get("path") and Path(base["path"]).is_dir() else convert_gguf(gguf, digest)
    tree = find_llama_cpp(llama_cpp)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.tmp-")
    os.close(fd)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.hf-"))
    try:
        source = _round_trip_folder(info, folder, staging) if key else folder
        run_converter(tree, [str(tree.script("convert_hf_to_gguf.py")), str(source), "--outtype", "f16",
                             "--outfile", tmp], "convert_hf_to_gguf.py")
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _round_trip_folder(info: dict[str, Any], folder: Path, staging: Path) -> Path:
    """The trained base (4-bit round trip) saved as a safetensors folder with the base's tokenizer."""
    from .infer import _device_map, _precision
    from .models import ModelSource
    from .roundtrip import load_base

    config = TrainConfig.model_validate(info["config"])
    model = load_base(ModelSource(str(folder), str(folder), "dir"), config, precision=_precision(info),
                      device_map=_device_map(), weights="trained")
    model.save_pretrained(staging)
    load_tokenizer(folder).save_pretrained(staging)
    return staging
