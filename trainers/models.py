"""Where the base model comes from, and loading it (4-bit for QLoRA) without pickle.

Sources: a local Hugging Face directory with ``*.safetensors`` weights, a ``.gguf`` file, or a hub id
(with a network). A GGUF file is dequantized once into a safetensors folder (sftdata.dequantize: weights
in bf16, its tokenizer beside them, cached under ``$SFTDATA_CACHE/models/<sha256 of the file>``);
bitsandbytes then quantizes that folder to NF4 like any other. A directory holding only ``pytorch_model.bin`` (pickle)
is refused; hub downloads are restricted to safetensors.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..dequantize import convert_gguf, file_sha256
from ..errors import TrainError
from ..tokenize.load import load_tokenizer

_PICKLES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "consolidated.00.pth")


@dataclass(frozen=True, slots=True)
class ModelSource:
    """What the user named (`spec`) and what from_pretrained loads (`path`: a directory or hub id)."""

    spec: str
    path: str
    kind: str  # "dir" | "gguf" | "hub"
    sha256: str | None = None  # of the .gguf file

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_model(spec: str | os.PathLike[str], *, cache: Path | None = None) -> ModelSource:
    """A directory, .gguf file or hub id → a loadable ModelSource (converting a GGUF once)."""
    text = os.fspath(spec)
    path = Path(text)
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise TrainError("no such GGUF file", file=text)
        digest = file_sha256(path)
        return ModelSource(text, str(convert_gguf(path, digest, cache)), "gguf", digest)
    if path.is_dir():
        check_safetensors(path)
        return ModelSource(text, str(path.resolve()), "dir")
    if path.exists():
        raise TrainError("expected a model directory, a .gguf file or a hub id", file=text)
    if text.count("/") != 1 or text.startswith((".", "/")):
        raise TrainError("no such model directory", file=text,
                         hint="give a Hugging Face directory, a .gguf file, or a hub id like org/name")
    return ModelSource(text, text, "hub")


def check_safetensors(path: Path) -> None:
    if not (path / "config.json").is_file():
        raise TrainError("not a Hugging Face model directory (no config.json)", file=str(path))
    if any(path.glob("*.safetensors")):
        return
    pickles = [p.name for p in path.iterdir() if p.name in _PICKLES or p.suffix in (".bin", ".pt", ".pth")]
    hint = ("convert it once with `python -c \"from transformers import AutoModelForCausalLM as M; "
            "M.from_pretrained('DIR').save_pretrained('DIR-st')\"` in a trusted environment") if pickles else None
    what = f"only pickle weights ({', '.join(sorted(pickles))}), which can run code when loaded" if pickles \
        else "no *.safetensors weights"
    raise TrainError(f"the model directory has {what}", file=str(path), hint=hint)


def torch_dtype(precision: str) -> Any:
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]


def quantization(config: Any, precision: str) -> Any:
    """The BitsAndBytesConfig of a QLoRA run (None without --4bit)."""
    if not config.load_in_4bit:
        return None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=config.quant_type,
                              bnb_4bit_use_double_quant=config.double_quant,
                              bnb_4bit_compute_dtype=torch_dtype(precision))


def load_model(source: ModelSource, *, precision: str, device_map: Any, quantization_config: Any = None,
               attn_implementation: str = "auto", trust_remote_code: bool = False) -> Any:
    """from_pretrained with safetensors only; errors become TrainError naming the source."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": torch_dtype(precision), "device_map": device_map,
                              "use_safetensors": True, "trust_remote_code": trust_remote_code}
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
    if attn_implementation != "auto":
        kwargs["attn_implementation"] = attn_implementation
    try:
        return AutoModelForCausalLM.from_pretrained(source.path, **kwargs)
    except Exception as error:  # OSError (offline/missing), ValueError (remote code, bad config), ImportError
        hint = "pass --trust-remote-code if you trust this model's code" if "trust_remote_code" in str(error) else None
        raise TrainError(f"cannot load the model: {type(error).__name__}: {error}", file=source.spec,
                         hint=hint) from None


def load_model_tokenizer(source: ModelSource, *, trust_remote_code: bool = False) -> Any:
    return load_tokenizer(source.path, trust_remote_code=trust_remote_code)
