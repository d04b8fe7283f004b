"""Choosing templates and EOS for a run: one place that turns the user's options
(--template, --tokenizer, --eos, --style) into renderers for each record kind."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import TemplateError
from ..items import Locator, Reject, Rendered, Stage, Style
from .templating import Renderer, Template, load_template, make_env
from ..schemas.records import Record, RecordKind, convert_record
from ..tokenize.load import chat_function, describe, load_tokenizer

AUTO = "auto"


@dataclass(slots=True)
class RenderPlan:
    """What a run renders with; `renderer_for` picks a template per record kind when template is auto."""

    style: Style
    template: str | None
    eos: str | None
    tokenizer: str | None
    tokenizer_obj: Any = None
    renderers: dict[str, Renderer] = field(default_factory=dict)

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
        template = load_template(name, make_env(), chat_template=chat_template)
        eos = self.eos or (describe(tok, self.tokenizer or "").eos if tok is not None else template.end_of_turn)
        if not eos:
            raise TemplateError(f"template {template.name!r} needs an EOS token and none was given",
                                hint="pass --tokenizer PATH (its EOS is used) or --eos TOKEN")
        chat_fn = chat_function(tok) if template.origin == "tokenizer" else None
        bos = (tok.bos_token or "") if tok is not None else ""
        return Renderer(template, eos, chat_fn, bos=bos)

    def templates(self) -> list[dict[str, str]]:
        return [{**r.template.ref(), "eos": r.eos} for r in self.renderers.values()]

    def provenance(self) -> dict[str, Any]:
        """What the .meta.json sidecar records about rendering."""
        return {"style": self.style.value, "template": self.templates(), "tokenizer": self.tokenizer,
                "eos": sorted({r.eos for r in self.renderers.values()}) or self.eos}

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


def rendered_row(rendered: Rendered, style: Style) -> dict[str, Any]:
    if style is Style.prompt_completion:
        prompt, completion = rendered.split()
        return {"prompt": prompt, "completion": completion}
    return {"text": rendered.text}


def make_plan(template: str | None, tokenizer: str | None, eos: str | None, style: Style | None,
              *, trust_remote_code: bool = False) -> RenderPlan | None:
    """None when nothing is rendered (records are written as they are)."""
    if template is None and style is None:
        if tokenizer or eos:
            raise TemplateError("--tokenizer/--eos only matter with --template or --style")
        return None
    tok = load_tokenizer(tokenizer, trust_remote_code=trust_remote_code) if tokenizer else None
    plan = RenderPlan(style or Style.text, template or AUTO, eos, tokenizer, tok)
    if plan.style is not Style.messages and plan.template != AUTO:
        plan.renderer_for(RecordKind.instruction)  # fail fast on a bad template or a missing EOS
    return plan
