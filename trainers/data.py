"""Training data → token ids and loss masks, through the same code as ``sftdata pretokenize``.

Two inputs are accepted:
- records JSONL as ``convert`` writes it: rendered with ``--template`` and tokenized by
  ``sftdata.curate.samples`` / ``sftdata.tokenize.encode.Encoder`` (the one place masks are made);
- ``pretokenize`` output (JSONL or Parquet), recognised by its ``input_ids`` column, with
  ``completion_mask`` or ``assistant_masks``; its template and EOS come from its ``.meta.json``.

The mask marks the completion / every assistant turn including its EOS; the trainer takes the loss
there and nowhere else. Samples longer than ``max_length`` are dropped (counted) or truncated
with pretokenize's rule (the prompt is cut first; the completion's end and its EOS stay).
"""
from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .. import templates as registry
from ..errors import TrainError, option
from ..ingest.readers import expand_sources
from ..items import Locator, Reject, Stage
from ..provenance import read_meta
from ..writers import file_digest

MASK_COLUMNS = ("completion_mask", "assistant_masks")


@dataclass(slots=True)
class TemplateRef:
    """The template a run trained with: enough to render prompts the same way at inference."""

    name: str
    sha256: str | None
    kind: str | None
    eos: str
    origin: str | None = None  # a file path, "tokenizer", or None when only the name is known
    source: str | None = None  # the Jinja text, when known
    args: dict[str, Any] = field(default_factory=dict)  # template arguments (enable_thinking, date_string, …)
    train_on: str = "all"

    def as_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "sha256": self.sha256, "kind": self.kind, "eos": self.eos, "origin": self.origin}
        if self.args:
            out["args"] = dict(self.args)
        if self.train_on != "all":
            out["train_on"] = self.train_on
        return out


@dataclass(slots=True)
class TrainData:
    input_ids: list[list[int]]
    masks: list[list[int]]
    format: str  # "records" | "pretokenized"
    sources: list[dict[str, Any]]
    templates: list[TemplateRef]
    counts: Counter = field(default_factory=Counter)

    @property
    def tokens(self) -> int:
        return sum(len(ids) for ids in self.input_ids)

    @property
    def trained_tokens(self) -> int:
        return sum(sum(m) for m in self.masks)

    @property
    def eos(self) -> str:
        return self.templates[0].eos

    def dataset(self) -> Any:
        from datasets import Dataset

        return Dataset.from_dict({"input_ids": self.input_ids, "completion_mask": self.masks})

    def summary(self) -> dict[str, Any]:
        return {"format": self.format, "samples": len(self.input_ids), "tokens": self.tokens,
                "trained_tokens": self.trained_tokens, "counts": dict(self.counts),
                "sources": self.sources}


def is_pretokenized(path: Path) -> bool:
    if path.suffix == ".parquet":
        import polars as pl

        return "input_ids" in pl.read_parquet_schema(path)
    with open(path, "rb") as handle:
        for line in handle:
            if line.strip():
                try:
                    first = orjson.loads(line)
                except orjson.JSONDecodeError:
                    return False
                return isinstance(first, dict) and "input_ids" in first
    return False


class Preparer:
    """Tokenizes train and eval data with one tokenizer, template and length limit."""

    def __init__(self, tokenizer: Any, template: str | None, max_length: int, overlong: str = "drop", *,
                 template_args: dict[str, Any] | None = None, train_on: str = "all") -> None:
        self.tokenizer, self.template = tokenizer, template
        self.template_args, self.train_on = dict(template_args or {}), train_on
        self.max_length, self.overlong = max_length, overlong
        self._plan: Any = None
        self._encoder: Any = None

    def load(self, inputs: list[str | os.PathLike[str]]) -> TrainData:
        paths = [s.path for s in expand_sources(list(inputs))]
        if not paths:
            raise TrainError("no data files", file=", ".join(map(str, inputs)))
        kinds = {is_pretokenized(p) for p in paths}
        if len(kinds) > 1:
            raise TrainError("mixing records and pretokenized files in one run", file=str(paths[0]))
        data = self._pretokenized(paths) if kinds.pop() else self._records(paths)
        if not data.input_ids:
            raise TrainError("no usable samples", file=str(paths[0]),
                             hint=f"counts: {dict(data.counts)}")
        return data

    # records JSONL: render + tokenize with sftdata's own pipeline
    def _records(self, paths: list[Path]) -> TrainData:
        from ..curate.samples import encoder_for, open_inputs, open_plan, rendered, tokenized

        if self._plan is None:
            self._plan = open_plan(self.template, self.tokenizer, template_args=self.template_args,
                                   train_on=self.train_on)  # type: ignore[arg-type]
            self._encoder = encoder_for(self._plan)
        inputs = open_inputs(paths)
        data = TrainData([], [], "records", [file_digest(p) for p in paths], [])
        drop = self.overlong == "drop"
        for value in tokenized(rendered(inputs.records(), self._plan), self._plan, self._encoder,
                               max_tokens=self.max_length if drop else None):
            if isinstance(value, Reject):
                if value.stage is Stage.tokenize and value.reason == "too_long":  # certainly longer than
                    # max_length, found before tokenizing (sftdata.curate.samples.screen): counted as _add would
                    data.counts["read"] += 1
                    data.counts["too_long"] += 1
                else:
                    data.counts[f"rejected:{value.reason}"] += 1
                continue
            problems = self._encoder.problems(value.tokenized)
            if problems:
                data.counts[f"rejected:{problems[0].value}"] += 1
                continue
            self._add(data, value.tokenized)
        data.templates = [_ref_from_renderer(r) for r in self._plan.renderers.values()]
        return data

    # pretokenize output
    def _pretokenized(self, paths: list[Path]) -> TrainData:
        data = TrainData([], [], "pretokenized", [file_digest(p) for p in paths], [])
        vocab = len(self.tokenizer)
        for path in paths:
            for index, row in enumerate(_rows(path)):
                ids, mask = _ids_and_mask(row, path, index)
                if max(ids, default=0) >= vocab:
                    raise TrainError(f"token id {max(ids)} is outside the tokenizer's vocabulary ({vocab}): the "
                                     "data was pretokenized with another tokenizer", file=str(path), line=index + 1)
                self._add(data, _as_tokenized(ids, mask, path, index))
        data.templates = self._pretokenized_templates(paths)
        return data

    def _add(self, data: TrainData, tok: Any) -> None:
        from ..curate.pretokenize import truncate

        data.counts["read"] += 1
        if not any(tok.mask):
            data.counts["rejected:nothing_trained"] += 1
            return
        if tok.length > self.max_length:
            if self.overlong == "drop":
                data.counts["too_long"] += 1
                return
            tok = truncate(tok, self.max_length)  # pretokenize's rule: the prompt goes first, the EOS stays
            data.counts["truncated"] += 1
        data.input_ids.append(list(tok.input_ids))
        data.masks.append(list(tok.mask))
        data.counts["used"] += 1

    def _pretokenized_templates(self, paths: list[Path]) -> list[TemplateRef]:
        meta = read_meta(paths[0]) or {}
        refs = meta.get("template") or []
        refs = refs if isinstance(refs, list) else [refs]
        eos = meta.get("eos")
        eos = eos[0] if isinstance(eos, list) and eos else eos
        out = [self._resolve_ref(r, eos) for r in refs if isinstance(r, dict)]
        if self.template:
            given = self._given_template()
            if out and out[0].sha256 and given.sha256 != out[0].sha256:
                raise TrainError(f"{option('template', self.template)} differs from the template the data was "
                                 f"pretokenized with ({out[0].name}, sha256 {out[0].sha256[:12]}…)",
                                 file=str(paths[0]))
            out = out or [given]
        if not out:
            eos = eos or self.tokenizer.eos_token
            out = [TemplateRef("unknown", None, None, eos)]
        return out

    def _given_template(self) -> TemplateRef:
        from ..curate.samples import open_plan
        from ..schemas.records import RecordKind

        plan = open_plan(self.template, self.tokenizer, template_args=self.template_args,
                         train_on=self.train_on)  # type: ignore[arg-type]
        return _ref_from_renderer(plan.renderer_for(RecordKind.instruction))

    def _resolve_ref(self, ref: dict[str, Any], eos: str | None) -> TemplateRef:
        name, sha = str(ref.get("name", "unknown")), ref.get("sha256")
        eos = ref.get("eos") or eos or self.tokenizer.eos_token
        chat = getattr(self.tokenizer, "chat_template", None)
        if name == "chat" and isinstance(chat, str) and _sha(chat) == sha:
            return TemplateRef(name, sha, "chat", eos, "tokenizer", chat, dict(ref.get("args") or {}))
        builtin = registry.BUILTIN.get(name)
        if builtin is not None:
            text = builtin.path.read_text(encoding="utf-8")
            if _sha(text) == sha:
                return TemplateRef(name, sha, builtin.kind, eos, str(builtin.path), text, dict(ref.get("args") or {}))
        return TemplateRef(name, sha, ref.get("kind"), eos, args=dict(ref.get("args") or {}))


def _ref_from_renderer(renderer: Any) -> TemplateRef:
    t = renderer.template
    return TemplateRef(t.name, t.sha256, t.kind.value, renderer.eos, t.origin, t.source, dict(t.args),
                       renderer.train_on)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _rows(path: Path) -> Any:
    if path.suffix == ".parquet":
        import polars as pl

        yield from pl.read_parquet(path).iter_rows(named=True)
        return
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError as error:
                    raise TrainError(f"invalid JSON: {error}", file=str(path), line=number) from None


def _as_tokenized(ids: list[int], mask: list[int], path: Path, index: int) -> Any:
    """A pretokenized row as a Tokenized value (segments = runs of equal mask), for truncation."""
    from ..tokenize.encode import Tokenized

    bounds, trained = [], []
    for i, m in enumerate(mask):
        if i and m != mask[i - 1]:
            bounds.append(i)
            trained.append(bool(mask[i - 1]))
    bounds.append(len(mask))
    trained.append(bool(mask[-1]) if mask else False)
    return Tokenized(ids, mask, bounds, trained, Locator(str(path), index=index))


def _ids_and_mask(row: dict[str, Any], path: Path, index: int) -> tuple[list[int], list[int]]:
    ids = row.get("input_ids")
    mask = next((row[c] for c in MASK_COLUMNS if row.get(c) is not None), None)
    if mask is None and row.get("labels") is not None:
        mask = [int(label != -100) for label in row["labels"]]
    if not isinstance(ids, list) or mask is None:
        raise TrainError("a pretokenized row needs input_ids and completion_mask or assistant_masks (without a "
                         "mask the loss would include the prompts)", file=str(path), line=index + 1,
                         hint="re-run `sftdata pretokenize`")
    if len(mask) != len(ids):
        raise TrainError(f"mask length {len(mask)} differs from input_ids length {len(ids)}",
                         file=str(path), line=index + 1)
    return [int(i) for i in ids], [int(bool(m)) for m in mask]
