"""Choosing templates and EOS for a run: one place that turns the user's options
(--template, --tokenizer, --eos, --style) into renderers for each record kind."""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import TemplateError, option
from ..items import Locator, Reject, Rendered, Stage, Style
from ..schemas.records import Record, RecordKind, convert_record
from ..tokenize.load import describe, load_tokenizer, special_tokens
from .chat import ChatTemplate, header_of, history_headers
from .markers import end_markers, turn_markers
from .templating import Renderer, TrainOn, load_template, make_env

AUTO = "auto"

TemplateArgs = Mapping[str, Any] | Sequence[str] | None
"""Template arguments: a mapping, or ``KEY=VALUE`` strings as --template-arg takes them."""


def parse_template_args(args: TemplateArgs) -> dict[str, Any]:
    """``enable_thinking=false`` → {"enable_thinking": False}: values read as JSON where they parse
    (``false``, ``3``, ``"x"``), otherwise kept as text (``date_string=26 Jul 2024``)."""
    if args is None:
        return {}
    if isinstance(args, Mapping):
        return dict(args)
    out: dict[str, Any] = {}
    for item in args:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip().isidentifier():
            raise TemplateError(f"template argument {item!r} is not KEY=VALUE", hint=f"e.g. {option('template_args', 'enable_thinking=false')}")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


@dataclass(slots=True)
class RenderPlan:
    """What a run renders with; `renderer_for` picks a template per record kind when template is auto."""

    style: Style
    template: str | None
    eos: str | None
    tokenizer: str | None
    tokenizer_obj: Any = None
    renderers: dict[str, Renderer] = field(default_factory=dict)
    template_args: dict[str, Any] = field(default_factory=dict)
    train_on: TrainOn = "all"

    def renderer_for(self, kind: RecordKind) -> Renderer:
        name = self.template if self.template and self.template != AUTO else (
            "chat" if kind is RecordKind.chat else "alpaca")
        if name not in self.renderers:
            self.renderers[name] = self._build(name)
        return self.renderers[name]

    def substitute(self, name: str, template: str) -> Renderer:
        """Render what `name` would (e.g. "chat") with `template` instead; used by audit to go on
        checking chats when the tokenizer has no chat template, after reporting that."""
        self.renderers[name] = self._build(template)
        return self.renderers[name]

    def _build(self, name: str) -> Renderer:
        tok = self.tokenizer_obj
        chat_template = tok.chat_template if tok is not None else None
        if name == "chat" and tok is not None and not chat_template:
            raise TemplateError(f"the tokenizer {self.tokenizer} has no chat_template",
                                hint="pick a built-in chat format with --template chatml or --template llama3")
        template = load_template(name, make_env(), chat_template=chat_template, args=self.template_args)
        bos = (tok.bos_token or "") if tok is not None else ""
        given = self.eos or (describe(tok, self.tokenizer or "").eos if tok is not None else template.end_of_turn)
        variables = dict(tok.special_tokens_map) if tok is not None else None
        controls = special_tokens(tok) if tok is not None else ()
        eos, ends = given, ()
        if template.kind is RecordKind.chat:  # the template's own end-of-turn markers, never a second EOS after one
            probe = ChatTemplate(template.compiled, template.source,
                                 {**(variables or {"bos_token": bos, "eos_token": given or ""}), **template.args})
            markers = end_markers(probe, controls)
            eos, ends = (markers.stop or given), markers.ends
            controls = (*controls, *turn_markers(probe, _headers(probe), ends))
        if not eos:
            raise TemplateError(f"template {template.name!r} needs an EOS token and none was given",
                                hint="pass --tokenizer PATH (its EOS is used) or --eos TOKEN")
        return Renderer(template, eos, bos, variables=variables, special_tokens=controls, train_on=self.train_on,
                        ends=ends)

    def templates(self) -> list[dict[str, str]]:
        return [{**r.template.ref(), "eos": r.eos} for r in self.renderers.values()]

    def provenance(self) -> dict[str, Any]:
        """What the .meta.json sidecar records about rendering."""
        out = {"style": self.style.value, "template": self.templates(), "tokenizer": self.tokenizer,
               "eos": sorted({r.eos for r in self.renderers.values()}) or self.eos}
        if self.template_args:
            out["template_args"] = dict(self.template_args)
        if self.train_on != "all":
            out["train_on"] = self.train_on
        return out

    def row(self, record: Record, locator: Locator) -> dict[str, Any] | Reject:
        """The output row for a record in this plan's style."""
        if self.style is Style.messages:
            try:
                chat = convert_record(record, RecordKind.chat)
            except Exception as error:  # pydantic's custom errors for records that do not fit
                return Reject(Stage.render, "not_convertible", f"cannot express as messages: {error}", locator,
                              raw=record.model_dump(mode="json", exclude_none=True))
            return chat.model_dump(mode="json", exclude_none=True, exclude={"meta", "id"})
        rendered = self.renderer_for(RecordKind(record.kind)).render(record, locator)
        if isinstance(rendered, Reject):
            return rendered
        return rendered_row(rendered, self.style)


def _headers(template: ChatTemplate) -> tuple[str, ...]:
    try:
        return (header_of(template, [{"role": "user", "content": "Hi"}], None), *history_headers(template))
    except Exception:  # a template that wants another shape of conversation: its markers are found without them
        return ()


def rendered_row(rendered: Rendered, style: Style) -> dict[str, Any]:
    if style is Style.prompt_completion:
        prompt, completion = rendered.split()
        return {"prompt": prompt, "completion": completion}
    return {"text": rendered.text}


def make_plan(template: str | None, tokenizer: Any, eos: str | None, style: Style | None,
              *, trust_remote_code: bool = False, template_args: TemplateArgs = None,
              train_on: TrainOn = "all") -> RenderPlan | None:
    """None when nothing is rendered (records are written as they are). `tokenizer` is a directory, .gguf file
    or hub id, or a tokenizer already loaded."""
    if template is None and style is None:
        if tokenizer or eos:
            raise TemplateError(f"{option('tokenizer')}/{option('eos')} only matter with {option('template')} or "
                                 f"{option('style')}")
        return None
    tok = tokenizer
    if isinstance(tokenizer, (str, os.PathLike)):
        tok = load_tokenizer(tokenizer, trust_remote_code=trust_remote_code) if tokenizer else None
    elif tokenizer is not None:  # already loaded (a split task's, built once per worker: sftdata.scale)
        tokenizer = str(getattr(tokenizer, "name_or_path", None) or type(tokenizer).__name__)
    plan = RenderPlan(style or Style.text, template or AUTO, eos, tokenizer, tok,
                      template_args=parse_template_args(template_args),
                      train_on=train_on)
    if plan.style is not Style.messages and plan.template != AUTO:
        plan.renderer_for(RecordKind.instruction)  # fail fast on a bad template or a missing EOS
    return plan
