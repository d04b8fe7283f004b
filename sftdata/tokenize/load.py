"""Tokenizer loading: a local Hugging Face directory, a .gguf file, or a hub id (with a network).

transformers (and torch, for .gguf) are imported only here and only when a tokenizer is asked for.
A tokenizer built from a GGUF file is cached as a saved directory, since building it is slow.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import TokenizerError


@dataclass(frozen=True, slots=True)
class TokenizerInfo:
    spec: str
    eos: str
    bos: str | None
    pad: str | None
    has_chat_template: bool


def cache_dir() -> Path:
    base = os.environ.get("SFTDATA_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "sftdata")
    return Path(base)


def load_tokenizer(spec: str | os.PathLike[str], *, trust_remote_code: bool = False) -> Any:
    """Load a tokenizer; raises TokenizerError with the cause, never a raw traceback."""
    text = os.fspath(spec)
    path = Path(text)
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise TokenizerError("loading a tokenizer needs transformers", hint="pip install 'sftdata[tokenizers]'") from None
    try:
        if path.suffix.lower() == ".gguf":
            if not path.is_file():
                raise TokenizerError("no such GGUF file", file=text)
            return AutoTokenizer.from_pretrained(_gguf_tokenizer_dir(path))
        if path.exists() and not path.is_dir():
            raise TokenizerError("expected a tokenizer directory, a .gguf file or a hub id", file=text)
        return AutoTokenizer.from_pretrained(text, trust_remote_code=trust_remote_code)
    except TokenizerError:
        raise
    except Exception as error:  # transformers raises many unrelated types for a bad tokenizer
        raise TokenizerError(f"cannot load tokenizer: {type(error).__name__}: {error}", file=text) from None


def _gguf_tokenizer_dir(path: Path) -> Path:
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:24]
    target = cache_dir() / "gguf-tokenizers" / key
    if (target / "tokenizer_config.json").is_file():
        return target
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        tokenizer.save_pretrained(staging)
        os.replace(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / "tokenizer_config.json").is_file():
            raise
    return target


def describe(tokenizer: Any, spec: str) -> TokenizerInfo:
    eos = tokenizer.eos_token
    if not eos:
        raise TokenizerError("the tokenizer defines no EOS token", file=spec, hint="pass --eos TOKEN")
    return TokenizerInfo(spec, eos, tokenizer.bos_token, tokenizer.pad_token, bool(tokenizer.chat_template))


def special_tokens(tokenizer: Any) -> tuple[str, ...]:
    """The tokenizer's control tokens (special tokens and added tokens marked special), longest first."""
    found = set(getattr(tokenizer, "all_special_tokens", []) or [])
    for token in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        if getattr(token, "special", False):
            found.add(str(token.content if hasattr(token, "content") else token))
    return tuple(sorted((t for t in found if t), key=lambda t: (-len(t), t)))
