"""Records → Rendered text: sandboxed Jinja, prompt/completion split, exactly one EOS.

Two kinds of template:
- block templates (alpaca, alpaca_ko, qa_ko, user files with ``{% block prompt %}`` and
  ``{% block completion %}``) render the fields of an instruction or Q&A record;
- chat templates (chatml, chatml_think, llama3, a tokenizer's chat_template, user files over
  ``messages``) render a conversation in Hugging Face's chat-template environment
  (sftdata.rendering.chat); each trained assistant turn is a trained segment, found in the rendering
  of the whole conversation and ending with the template's own end-of-turn marker.
Record text is only ever passed as variables, so ``{{ name }}`` inside data renders literally.
"""
from __future__ import annotations

import hashlib
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from pydantic import ValidationError
from pydantic_core import PydanticCustomError

from .. import templates as registry
from ..errors import SftDataError, TemplateError, option
from ..items import Locator, Reject, Rendered, Segment, Stage
from ..schemas.records import ChatRecord, Record, RecordKind, convert_record
from .chat import ChatTemplate, TurnNotLocated, header_of, history_headers, locate_turns, make_chat_env


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
    args: dict[str, Any] = field(default_factory=dict)  # --template-arg KEY=VALUE, passed to every rendering

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.source.encode("utf-8")).hexdigest()

    def ref(self) -> dict[str, Any]:
        ref: dict[str, Any] = {"name": self.name, "sha256": self.sha256, "kind": self.kind.value}
        if self.args:
            ref["args"] = dict(self.args)
        return ref


def load_template(name_or_path: str, env: ImmutableSandboxedEnvironment | None = None,
                  chat_template: str | None = None, args: dict[str, Any] | None = None) -> Template:
    """A built-in name, ``chat`` (the tokenizer's chat_template when given), or a path to a .jinja file;
    `args` are the template arguments (``enable_thinking``, ``date_string``, …) every rendering gets."""
    template = _load(name_or_path, env or make_env(), chat_template)
    template.args = dict(args or {})
    return template


def _load(name_or_path: str, env: ImmutableSandboxedEnvironment, chat_template: str | None) -> Template:
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
    return _compile(env, path.stem, read_template(path), str(path), None)


def read_template(path: Path) -> str:
    """A template file's text, or a TemplateError naming the file."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise TemplateError(f"cannot read template: {error}", file=str(path)) from None


def _compile(env: ImmutableSandboxedEnvironment, name: str, source: str, origin: str,
             kind: RecordKind | None) -> Template:
    try:
        # Parsed with the chat environment, whose syntax (loop controls, generation blocks) is a superset.
        tree = make_chat_env().parse(source, name=name, filename=origin)
    except jinja2.TemplateSyntaxError as error:
        raise TemplateError(f"template syntax error: {error.message}", file=origin, line=error.lineno) from None
    blocks = {b.name for b in tree.find_all(nodes.Block)}
    variables = meta.find_undeclared_variables(tree)
    if kind is None:
        kind = _infer_kind(blocks, variables, origin)
    if kind is RecordKind.chat:
        env = make_chat_env()  # exactly as Hugging Face renders chat templates
    try:
        # Compiled with the file name, so runtime errors can be traced to a template line.
        code = env.compile(source, name=name, filename=origin)
        compiled = env.template_class.from_code(env, code, env.make_globals(None))
    except jinja2.TemplateSyntaxError as error:
        raise TemplateError(f"template syntax error: {error.message}", file=origin, line=error.lineno) from None
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
    if isinstance(error, TemplateError):  # the template's own raise_exception
        return TemplateError(error.message, file=template.origin, line=line)
    what = "unsafe operation blocked by the sandbox" if isinstance(error, SecurityError) else "template error"
    return TemplateError(f"{what}: {error}", file=template.origin, line=line)


TrainOn = Literal["all", "last"]


class Renderer:
    """Renders records with one template and one stop token; returns Rendered or a Reject per record.

    `eos` is the stop token that ends every trained span: for chat templates, the template's own
    end-of-turn marker (worked out by sftdata.rendering.plan). `variables` are the tokenizer's special
    tokens as Hugging Face passes them to chat templates; `special_tokens` are the tokenizer's control
    tokens, which must not appear inside the data. `train_on` picks the assistant turns that carry a
    loss (every one, or the last); a message's own `weight` (0 or 1) overrides it."""

    def __init__(self, template: Template, eos: str, bos: str = "", *, variables: dict[str, Any] | None = None,
                 special_tokens: tuple[str, ...] = (), train_on: TrainOn = "all", ends: tuple[str, ...] = ()) -> None:
        if not eos:
            raise TemplateError("an EOS token is required", hint=f"pass {option('tokenizer')} or {option('eos')}")
        self.template, self.eos, self.bos, self.train_on = template, eos, bos, train_on
        self.ends = tuple(dict.fromkeys((eos, *ends)))  # every end-of-turn marker a trained turn may end with
        self.special_tokens = tuple(t for t in special_tokens if t and t != eos)
        self._blocks = template.compiled.blocks
        self.chat: ChatTemplate | None = None
        if template.kind is RecordKind.chat:
            base = {"bos_token": bos, "eos_token": eos} if variables is None else variables
            self.chat = ChatTemplate(template.compiled, template.source, {**base, **template.args})
        self._headers: tuple[str, ...] | None = None

    def render(self, record: Record, locator: Locator) -> Rendered | Reject:
        try:
            record = convert_record(record, self.template.kind)
        except (PydanticCustomError, ValidationError) as error:
            return Reject(Stage.render, "not_convertible",
                          f"a {record.kind} record cannot be rendered with the {self.template.kind.value} "
                          f"template {self.template.name!r}: {error}", locator, raw=_dump(record))
        leaked = _token_in(record, (self.eos,))
        if leaked:
            return Reject(Stage.render, "eos_in_text", f"the EOS token {self.eos!r} appears inside the data; "
                          "remove it so the sample ends with exactly one EOS", locator, field=leaked,
                          raw=_dump(record))
        leaked = _token_in(record, self.special_tokens)
        if leaked:
            return Reject(Stage.render, "special_token_in_text", "a special token of the tokenizer appears "
                          "inside the data, where it would be tokenized as a control token and trained",
                          locator, field=leaked, raw=_dump(record))
        try:
            if isinstance(record, ChatRecord):
                segments = self._chat_segments(record)
            else:
                segments = self._block_segments(record)
        except TurnNotLocated as error:
            return Reject(Stage.render, "turn_not_located", f"cannot locate a trained turn in what the chat "
                          f"template {self.template.name!r} renders ({error})", locator, raw=_dump(record))
        except SftDataError as error:
            if not isinstance(error, TemplateError):
                raise
            return self._template_error(error, locator, record)
        except Exception as error:  # whatever one conversation makes a template raise: a reject
            return self._template_error(error, locator, record)
        return Rendered(segments, locator, whole=isinstance(record, ChatRecord))

    def _template_error(self, error: Exception, locator: Locator, record: Record) -> Reject:
        """A template that raises for one record (its own raise_exception, the sandbox, an undefined value, a
        TypeError on a value it did not expect) rejects that record with the template's message and line,
        as transformers refuses that conversation: never the end of the run. Call it inside the `except`."""
        failure = template_failure(error, self.template)
        return Reject(Stage.render, "template_error", str(failure), locator, raw=_dump(record))

    def _block_segments(self, record: Record) -> list[Segment]:
        context = self.template.compiled.new_context(self._variables(record))
        prompt = "".join(self._blocks["prompt"](context))
        completion = "".join(self._blocks["completion"](context))
        if not completion.endswith(self.eos):
            completion += self.eos
        return [Segment(prompt, False), Segment(completion, True)]

    def _variables(self, record: Record) -> dict[str, Any]:
        return {**self.template.args, **record.model_dump(exclude={"meta"}), "eos_token": self.eos,
                "bos_token": self.bos}

    def trained_turns(self, record: ChatRecord) -> list[int]:
        """Indexes of the assistant messages that carry a loss."""
        assistants = [i for i, m in enumerate(record.messages) if m.role.value == "assistant"]
        chosen = assistants if self.train_on == "all" else assistants[-1:]
        weights = {i: record.messages[i].weight for i in assistants if record.messages[i].weight is not None}
        return [i for i in assistants if weights.get(i, 1 if i in chosen else 0) == 1]

    def chat_messages(self, record: ChatRecord) -> list[dict[str, Any]]:
        """The messages as the template sees them (the training-only `weight` left out)."""
        return [m.model_dump(mode="json", exclude_none=True, exclude={"weight"}) for m in record.messages]

    def _chat_segments(self, record: ChatRecord) -> list[Segment]:
        """The whole conversation rendered once; each trained turn located in it (sftdata.rendering.chat)."""
        assert self.chat is not None
        messages = self.chat_messages(record)
        trained = self.trained_turns(record)
        if self.chat.has_generation_blocks:
            full, spans = self.chat.render_tracked(messages, record.tools)
            assistants = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
            if len(spans) != len(assistants):
                raise TurnNotLocated(f"{len(spans)} generation blocks for {len(assistants)} assistant turns")
            picked = [self._block_end(full, a, b) for i, (a, b) in zip(assistants, spans) if i in trained]
            return _segments(full, picked, self.eos)
        full = self.chat.render(messages, record.tools)
        turns = locate_turns(self.chat, messages, record.tools, full, trained, self.ends, self._headers_for())
        return _segments(full, [(t.start, t.end, t.stop_found) for t in turns], self.eos)

    def _block_end(self, full: str, start: int, end: int) -> tuple[int, int, bool]:
        """A `{% generation %}` block's span: it ends with the template's own end-of-turn marker where the
        block holds one (LFM2.5 puts `<|im_end|>\n` inside: the newline after it is context, as everywhere),
        else the stop marker is added after it."""
        body = full[start:end].rstrip()
        for marker in self.ends:
            if body.endswith(marker):
                return start, start + len(body), True
        return start, end, False

    def _headers_for(self) -> tuple[str, ...] | None:
        """The generation prompt's text and the header history answers get, worked out once on a one-question
        conversation (None: the prompt's, per turn)."""
        if self._headers is None and self.chat is not None:
            try:
                prompt = header_of(self.chat, [{"role": "user", "content": "Hi"}], None)
                self._headers = tuple(dict.fromkeys((prompt, *history_headers(self.chat))))
            except Exception:  # a template that wants another shape: worked out per conversation instead
                self._headers = ()
        return self._headers if self._headers and self._headers[0] else None


def _segments(full: str, spans: list[tuple[int, int, bool]], stop: str) -> list[Segment]:
    segments: list[Segment] = []
    done = 0
    for start, end, has_stop in spans:
        segments += [Segment(full[done:start], False), Segment(full[start:end] + ("" if has_stop else stop), True)]
        done = end
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


def _token_in(record: Record, tokens: tuple[str, ...]) -> str | None:
    """The first text field that holds one of `tokens`, as a path (``messages[1].content``)."""
    if not tokens:
        return None
    if isinstance(record, ChatRecord):
        for index, message in enumerate(record.messages):
            for name in ("content", "reasoning_content"):
                value = getattr(message, name)
                if value and any(t in value for t in tokens):
                    return f"messages[{index}].{name}"
        return None
    for name, value in record.model_dump(exclude={"meta", "id"}).items():
        if isinstance(value, str) and any(t in value for t in tokens):
            return name
    return None
