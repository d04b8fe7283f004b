"""A chat template TRL's `assistant_only_loss=True` (and axolotl's `chat_template_jinja`) can train with.

TRL masks the loss to `{% generation %}` blocks of the tokenizer's chat template, and refuses a template
without them. sftdata's built-in chat templates (chatml, chatml_think, llama3) mark exactly the spans
sftdata trains, so an export rendered with one of them ships it beside the data; any `.jinja` chat
template with generation blocks works too. Before writing, every exported chat is rendered with it and
each generation block must be the trained span sftdata's own renderer finds (ending with the stop
token), so the template handed to TRL trains what `pretokenize` and `train` would.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import TemplateError
from ..items import Locator, Rendered
from ..rendering.plan import make_plan
from ..rendering.templating import load_template
from ..schemas.records import ChatRecord, RecordKind

GENERATION_TEMPLATES = ("chatml", "chatml_think", "llama3")


@dataclass(slots=True)
class TrainingTemplate:
    name: str
    sha256: str
    source: str
    stop: str

    def ref(self, file: Path) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "stop": self.stop, "file": file.name}


def training_template(template: str, tokenizer: str | None, chats: Iterable[ChatRecord]) -> TrainingTemplate:
    """The template, checked on the chats to be exported; TemplateError when TRL could not train with it."""
    if template != "chat" and load_template(template).kind is not RecordKind.chat:
        raise TemplateError(f"{template!r} is not a chat template: TRL's assistant_only_loss trains chats",
                            hint=f"use --template {' / '.join(GENERATION_TEMPLATES)}")
    plan = make_plan(template, tokenizer, None, None)
    if plan is None:  # pragma: no cover - a template is given
        raise TemplateError("no template")
    renderer = plan.renderer_for(RecordKind.chat)
    chat = renderer.chat
    if chat is None or not chat.has_generation_blocks:
        raise TemplateError(f"the template {renderer.template.name!r} has no {{% generation %}} blocks, so TRL's "
                            "assistant_only_loss cannot use it",
                            hint=f"use --template {' / '.join(GENERATION_TEMPLATES)}, or a .jinja chat template "
                                 "with {% generation %} around each assistant turn")
    for index, record in enumerate(chats):
        rendered = renderer.render(record, Locator("<export>", index=index))
        if not isinstance(rendered, Rendered):
            continue  # such rows are rejects of the export itself
        _, spans = chat.render_tracked(renderer.chat_messages(record), record.tools)
        trained = [s.text for s in rendered.segments if s.train]
        text = rendered.text
        marked = [text[a:b] for a, b in spans]
        if not marked or any(not t.endswith(renderer.eos) for t in trained) or set(trained) - set(marked):
            raise TemplateError(f"the template's generation blocks do not mark the trained turns of row {index + 1}",
                                file=renderer.template.origin)
    t = renderer.template
    return TrainingTemplate(t.name, t.sha256, t.source, renderer.eos)
