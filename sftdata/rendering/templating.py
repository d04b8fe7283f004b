"""Records → Rendered text: sandboxed Jinja, prompt/completion split, exactly one EOS.

Two kinds of template:
- block templates (alpaca, alpaca_ko, qa_ko, user files with ``{% block prompt %}`` and
  ``{% block completion %}``) render the fields of an instruction or Q&A record;
- chat templates (chatml, llama3, a tokenizer's chat_template, user files over ``messages``)
  render a conversation; every assistant turn is a trained segment.
Record text is only ever passed as variables, so ``{{ name }}`` inside data renders literally.
"""
from __future__ import annotations

import hashlib
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from pydantic import ValidationError
from pydantic_core import PydanticCustomError

from .. import templates as registry
from ..errors import TemplateError
from ..items import Locator, Reject, Rendered, Segment, Stage
from ..schemas.records import ChatRecord, Record, RecordKind, convert_record


def make_env() -> ImmutableSandboxedEnvironment:
    # The same whitespace rules as Hugging Face chat templates, so their templates render unchanged.
    env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                                        keep_trailing_newline=True, autoescape=False)
    env.globals["raise_exception"] = _raise_exception
    return env


def _raise_exception(message: str) -> None:
    raise TemplateError(f"template raised: {message}")


@dataclass(slots=True)
class Template:
    """A loaded template: its name, content hash, kind and compiled Jinja."""

    name: str
    source: str
    kind: RecordKind
    compiled: jinja2.Template
    origin: str  # file path or "tokenizer"
    end_of_turn: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.source.encode("utf-8")).hexdigest()

    def ref(self) -> dict[str, str]:
        return {"name": self.name, "sha256": self.sha256, "kind": self.kind.value}


def load_template(name_or_path: str, env: ImmutableSandboxedEnvironment | None = None,
                  chat_template: str | None = None) -> Template:
    """A built-in name, ``chat`` (the tokenizer's chat_template when given), or a path to a .jinja file."""
    env = env or make_env()
    if name_or_path == registry.CHAT:
        if chat_template:
            return _compile(env, "chat", chat_template, "tokenizer", RecordKind.chat)
        name_or_path = registry.CHAT_FALLBACK
    builtin = registry.BUILTIN.get(name_or_path)
    if builtin is not None:
        template = _compile(env, builtin.name, builtin.path.read_text(encoding="utf-8"), str(builtin.path),
                            RecordKind(builtin.kind))
        template.end_of_turn = builtin.end_of_turn
        return template
    path = Path(name_or_path)
    if not path.is_file():
        raise TemplateError(f"unknown template {name_or_path!r}",
                            hint=f"use one of {', '.join([registry.CHAT, *registry.BUILTIN])} or a .jinja file")
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise TemplateError(f"cannot read template: {error}", file=str(path)) from None
    return _compile(env, path.stem, source, str(path), None)


def _compile(env: ImmutableSandboxedEnvironment, name: str, source: str, origin: str,
             kind: RecordKind | None) -> Template:
    try:
        tree = env.parse(source, name=name, filename=origin)
        # Compiled with the file name, so runtime errors can be traced to a template line.
        code = env.compile(source, name=name, filename=origin)
        compiled = env.template_class.from_code(env, code, env.make_globals(None))
    except jinja2.TemplateSyntaxError as error:
        raise TemplateError(f"template syntax error: {error.message}", file=origin, line=error.lineno) from None
    blocks = {b.name for b in tree.find_all(nodes.Block)}
    variables = meta.find_undeclared_variables(tree)
    if kind is None:
        kind = _infer_kind(blocks, variables, origin)
    if kind is not RecordKind.chat and not {"prompt", "completion"} <= blocks:
        raise TemplateError("a template for instruction or Q&A records needs {% block prompt %} and "
                            "{% block completion %}", file=origin)
    return Template(name, source, kind, compiled, origin)


def _infer_kind(blocks: set[str], variables: set[str], origin: str) -> RecordKind:
    if "messages" in variables:
        return RecordKind.chat
    if {"prompt", "completion"} <= blocks:
        return RecordKind.qa if variables & {"question", "answer", "context"} else RecordKind.instruction
    raise TemplateError("cannot tell what the template renders: use {% block prompt %}/{% block completion %} "
                        "over record fields, or loop over messages", file=origin)


def template_failure(error: Exception, template: Template) -> TemplateError:
    """A TemplateError naming the template file and the line where rendering failed.

    Call it inside the `except` block: Jinja maps generated-code frames back to template lines
    only through handle_exception, which reads the exception being handled."""
    try:
        template.compiled.environment.handle_exception(template.source)
    except Exception as rewritten:  # the same error, its traceback now in template lines
        error = rewritten
    line = None
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename == template.origin:
            line = frame.lineno
    what = "unsafe operation blocked by the sandbox" if isinstance(error, SecurityError) else "template error"
    return TemplateError(f"{what}: {error}", file=template.origin, line=line)


ChatFn = Callable[[list[dict[str, Any]], bool, list[dict[str, Any]] | None], str]


class Renderer:
    """Renders records with one template and one EOS; returns Rendered or a Reject per record."""

    def __init__(self, template: Template, eos: str, chat_fn: ChatFn | None = None, bos: str = "") -> None:
        if not eos:
            raise TemplateError("an EOS token is required", hint="pass --tokenizer or --eos")
        self.template, self.eos, self.bos = template, eos, bos
        self.chat_fn = chat_fn or self._jinja_chat
        self._blocks = template.compiled.blocks

    def render(self, record: Record, locator: Locator) -> Rendered | Reject:
        try:
            record = convert_record(record, self.template.kind)
        except (PydanticCustomError, ValidationError) as error:
            return Reject(Stage.render, "not_convertible",
                          f"a {record.kind} record cannot be rendered with the {self.template.kind.value} "
                          f"template {self.template.name!r}: {error}", locator, raw=_dump(record))
        leaked = _eos_in(record, self.eos)
        if leaked:
            return Reject(Stage.render, "eos_in_text", f"the EOS token {self.eos!r} appears inside the data; "
                          "remove it so the sample ends with exactly one EOS", locator, field=leaked,
                          raw=_dump(record))
        try:
            if isinstance(record, ChatRecord):
                segments = self._chat_segments(record)
            else:
                segments = self._block_segments(record)
        except TemplateError:
            raise
        except (jinja2.TemplateError, SecurityError, TypeError, ValueError, AttributeError) as error:
            raise template_failure(error, self.template) from None
        return Rendered(segments, locator)

    def _block_segments(self, record: Record) -> list[Segment]:
        context = self.template.compiled.new_context(self._variables(record))
        prompt = "".join(self._blocks["prompt"](context))
        completion = "".join(self._blocks["completion"](context))
        if not completion.endswith(self.eos):
            completion += self.eos
        return [Segment(prompt, False), Segment(completion, True)]

    def _variables(self, record: Record) -> dict[str, Any]:
        return {**record.model_dump(exclude={"meta"}), "eos_token": self.eos, "bos_token": self.bos}

    def _jinja_chat(self, messages: list[dict[str, Any]], add_generation_prompt: bool,
                    tools: list[dict[str, Any]] | None) -> str:
        return self.template.compiled.render(messages=messages, add_generation_prompt=add_generation_prompt,
                                             tools=tools, eos_token=self.eos, bos_token=self.bos)

    def _chat_segments(self, record: ChatRecord) -> list[Segment]:
        """Each assistant turn's span is found by rendering the conversation up to it, with and
        without that turn; the span ends at its EOS (appended once if the format has none)."""
        messages = [m.model_dump(mode="json", exclude_none=True) for m in record.messages]
        full = self.chat_fn(messages, False, record.tools)
        segments: list[Segment] = []
        done = 0
        for index, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            before = self.chat_fn(messages[:index], True, record.tools)
            upto = self.chat_fn(messages[: index + 1], False, record.tools)
            if not (upto.startswith(before) and full.startswith(upto) and len(before) >= done):
                raise TemplateError("the chat template does not render conversations incrementally, so turns "
                                    "cannot be located", file=self.template.origin)
            span = upto[len(before):]
            cut = span.rfind(self.eos)
            tail = ""
            if cut < 0:
                span += self.eos
            else:
                span, tail = span[: cut + len(self.eos)], span[cut + len(self.eos):]
            segments += [Segment(full[done:len(before)], False), Segment(span, True)]
            if tail:
                segments.append(Segment(tail, False))
            done = len(upto)
        if done < len(full):
            segments.append(Segment(full[done:], False))
        return _merge(segments)


def _merge(segments: list[Segment]) -> list[Segment]:
    merged: list[Segment] = []
    for segment in segments:
        if not segment.text:
            continue
        if merged and merged[-1].train == segment.train and not segment.train:
            merged[-1] = Segment(merged[-1].text + segment.text, False)
        else:
            merged.append(segment)
    return merged


def _dump(record: Record) -> dict[str, Any]:
    return record.model_dump(mode="json", exclude_none=True)


def _eos_in(record: Record, eos: str) -> str | None:
    if isinstance(record, ChatRecord):
        for index, message in enumerate(record.messages):
            if eos in message.content:
                return f"messages[{index}].content"
        return None
    for name, value in record.model_dump(exclude={"meta", "id"}).items():
        if isinstance(value, str) and eos in value:
            return name
    return None
