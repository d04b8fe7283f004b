"""Tokenizer loading: a local Hugging Face directory, a .gguf file, or a hub id (with a network).

transformers (and torch, for .gguf) are imported only here and only when a tokenizer is asked for.
A tokenizer built from a GGUF file is cached as a saved directory, since building it is slow.
"""
from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import TokenizerError, option
from ..writers import publish_dir


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
        if path.is_dir():
            _check_tokenizer_dir(path)
        elif _looks_like_path(text):
            raise TokenizerError("no such tokenizer directory", file=text,
                                 hint="give a folder with tokenizer files, a .gguf file, or a hub id like org/name")
        else:
            return AutoTokenizer.from_pretrained(text, trust_remote_code=trust_remote_code, **_hub_options(text))
        return AutoTokenizer.from_pretrained(text, trust_remote_code=trust_remote_code)
    except TokenizerError:
        raise
    except Exception as error:  # transformers raises many unrelated types for a bad tokenizer
        if not path.exists() and not _looks_like_path(text) and _hub_options(text):
            raise TokenizerError(f"the hub id {text!r} is not in the local cache and the hub cannot be reached "
                                 "(offline)", file=text, hint="download it where there is a network, or give a local "
                                 "tokenizer folder or .gguf file") from None
        raise TokenizerError(f"cannot load tokenizer: {type(error).__name__}: {error}", file=text) from None


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "spiece.model",
                   "sentencepiece.bpe.model", "tokenizer.tiktoken")


def _check_tokenizer_dir(path: Path) -> None:
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise TokenizerError("the folder has no tokenizer files", file=str(path),
                             hint=f"a tokenizer folder holds one of {', '.join(TOKENIZER_FILES[:4])}, …; "
                                  "save one with tokenizer.save_pretrained(DIR), or pass the .gguf file")


def _looks_like_path(text: str) -> bool:
    """A hub id is org/name; ./x, ../x, /x, ~/x, x/ or more than one slash name a path."""
    return (text.startswith((".", "/", "~")) or text.endswith(("/", os.sep)) or text.count("/") != 1
            or os.sep != "/" and os.sep in text)


def _hub_options(repo: str) -> dict[str, Any]:
    """Offline (HF_HUB_OFFLINE, or the hub not reachable within ~1.5 s): read the local cache only, so a
    missing model fails in about a second instead of after five retries."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes") or not _hub_reachable():
        return {"local_files_only": True}
    return {}


@functools.lru_cache(maxsize=1)
def _hub_reachable(timeout: float = 1.5) -> bool:
    import socket
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _gguf_tokenizer_dir(path: Path) -> Path:
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:24]
    target = cache_dir() / "gguf-tokenizers" / key
    if (target / "tokenizer_config.json").is_file():
        return target
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    return publish_dir(target, tokenizer.save_pretrained, "tokenizer_config.json")


def describe(tokenizer: Any, spec: str) -> TokenizerInfo:
    eos = tokenizer.eos_token
    if not eos:
        raise TokenizerError("the tokenizer defines no EOS token", file=spec, hint=f"pass {option('eos', 'TOKEN')}")
    return TokenizerInfo(spec, eos, tokenizer.bos_token, tokenizer.pad_token, bool(tokenizer.chat_template))


def special_tokens(tokenizer: Any) -> tuple[str, ...]:
    """The tokenizer's control tokens (special tokens and added tokens marked special), longest first."""
    found = set(getattr(tokenizer, "all_special_tokens", []) or [])
    for token in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        if getattr(token, "special", False):
            found.add(str(token.content if hasattr(token, "content") else token))
    return tuple(sorted((t for t in found if t), key=lambda t: (-len(t), t)))
