"""A local tokenizer directory read with `tokenizers` alone, for the curation commands.

Loading through transformers imports torch (transformers 5 imports it from its config module), which
costs seconds of start-up and ~250 MB of RSS that `stats`, `inspect`, `audit` and `pretokenize` do
not need. For a directory whose tokenizer_config.json names a generic fast tokenizer
(``TokenizersBackend``, as transformers 5 saves them, or ``PreTrainedTokenizerFast``), transformers
uses tokenizer.json as it is, so reading that file with `tokenizers` gives the same ids; the special
tokens come from tokenizer_config.json, and a chat template is rendered by transformers' own
``render_jinja_template`` (importing it does not import torch). Model-specific classes (Gemma, Llama,
...) can rebuild parts of the pipeline in code, so they, .gguf files, hub ids, custom code and named
template sets still go through transformers. Set SFTDATA_LIGHT_TOKENIZER=0 to always use transformers.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

GENERIC = {"TokenizersBackend", "PreTrainedTokenizerFast"}
SPECIAL = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


def _content(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else None


class LightTokenizer:
    """The part of a transformers tokenizer's interface sftdata uses, over a `tokenizers.Tokenizer`."""

    def __init__(self, directory: Path, config: dict[str, Any], chat_template: str | None) -> None:
        from tokenizers import Tokenizer

        self.name_or_path = str(directory)
        self.backend_tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.chat_template = chat_template
        self.special_tokens_map = {k: v for k in SPECIAL if (v := _content(config.get(k)))}
        for key in SPECIAL:
            setattr(self, key, self.special_tokens_map.get(key))

    @property
    def all_special_tokens(self) -> list[str]:
        """The special tokens of tokenizer_config.json and every added token marked special in tokenizer.json
        (what transformers' tokenizer lists as its control tokens)."""
        found = dict.fromkeys(self.special_tokens_map.values())
        for token in self.backend_tokenizer.get_added_tokens_decoder().values():
            if token.special:
                found[token.content] = None
        return list(found)

    def __len__(self) -> int:
        return self.backend_tokenizer.get_vocab_size(with_added_tokens=True)

    def __call__(self, text: str | list[str], add_special_tokens: bool = True,
                 return_offsets_mapping: bool = False) -> dict[str, Any]:
        if isinstance(text, list):
            encodings = self.backend_tokenizer.encode_batch(text, add_special_tokens=add_special_tokens)
            return {"input_ids": [e.ids for e in encodings]}
        encoding = self.backend_tokenizer.encode(text, add_special_tokens=add_special_tokens)
        out: dict[str, Any] = {"input_ids": encoding.ids}
        if return_offsets_mapping:
            out["offset_mapping"] = encoding.offsets
        return out

    def convert_tokens_to_ids(self, token: str) -> int | None:
        return self.backend_tokenizer.token_to_id(token)

    def get_vocab(self) -> dict[str, int]:
        return self.backend_tokenizer.get_vocab(with_added_tokens=True)

    def decode(self, ids: list[int], skip_special_tokens: bool = False,
               clean_up_tokenization_spaces: bool = False) -> str:
        if clean_up_tokenization_spaces:
            raise NotImplementedError("sftdata never cleans up tokenization spaces")
        return self.backend_tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def apply_chat_template(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
                            tokenize: bool = False, add_generation_prompt: bool = False) -> str:
        if tokenize or not self.chat_template:
            raise NotImplementedError("only rendering to text with the tokenizer's own chat template")
        from transformers.utils.chat_template_utils import render_jinja_template

        conversation = [{k: v for k, v in m.items() if v is not None} for m in messages]
        rendered, _ = render_jinja_template(conversations=[conversation], tools=tools, documents=None,
                                            chat_template=self.chat_template,
                                            add_generation_prompt=add_generation_prompt, **self.special_tokens_map)
        return rendered[0]


def load_light(spec: str | os.PathLike[str]) -> LightTokenizer | None:
    """A LightTokenizer when `spec` is a directory it can serve exactly, else None."""
    if os.environ.get("SFTDATA_LIGHT_TOKENIZER", "1").lower() in ("0", "false", "no"):
        return None
    directory = Path(spec)
    if not (directory / "tokenizer.json").is_file() or not (directory / "tokenizer_config.json").is_file():
        return None
    try:
        config = json.loads((directory / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if config.get("tokenizer_class") not in GENERIC or "auto_map" in config or not _content(config.get("eos_token")):
        return None
    if {"add_bos_token", "add_eos_token", "add_prefix_space"} & set(config):
        return None  # transformers rewrites the post-processor or pre-tokenizer for these
    chat_template = config.get("chat_template")
    template_file = directory / "chat_template.jinja"
    if template_file.is_file():
        chat_template = template_file.read_text(encoding="utf-8")
    if chat_template is not None and not isinstance(chat_template, str):
        return None  # named template sets: transformers picks one
    if any((directory / name).exists() for name in ("special_tokens_map.json", "added_tokens.json")):
        return None  # legacy files transformers merges in
    try:
        return LightTokenizer(directory, config, chat_template)
    except Exception:  # an unreadable tokenizer.json: let transformers report it
        return None
