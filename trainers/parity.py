"""Template parity: the prompt a server builds from a GGUF's own chat template, against the text training used.

A server's chat endpoint formats messages with the chat template in the GGUF's metadata
(``tokenizer.chat_template``) and its own Jinja engine; if that text differs from what training rendered by
one byte (a newline, a default system prompt, a missing template argument), the fine-tune is asked in a
format it never saw. So held-out conversations (the run's eval data, else the first records of its data)
are rendered twice and compared byte for byte:

* training: the run's Renderer (template, template arguments, EOS), everything before the last trained turn;
* llama-cpp-python's server: the chat handler it picks for that GGUF, resolved exactly as
  ``Llama.create_chat_completion`` resolves it (``chat_handler``, else the handler registered for
  ``chat_format``, which ``Llama.__init__`` sets from the GGUF metadata), and its formatter called on the
  same messages. The running server then confirms it used that prompt: its ``usage.prompt_tokens`` for the
  chat request must equal the token count of the text (tokenized as the handler tokenizes it);
* llama.cpp's own ``llama-server --jinja`` (its own Jinja engine): the text its ``/apply-template``
  endpoint returns for the same messages, parsed as its chat endpoint parses them.

A mismatch names the first differing character and what each side wrote there.
"""
from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BackendError
from ..items import Locator, Rendered

SCAN = 1000  # lines read from each file for held-out conversations
CONTEXT = 40  # characters shown of what each side wrote from the first difference on


@dataclass(slots=True)
class Conversation:
    """A held-out conversation: the messages a client sends and the text training rendered for them."""

    label: str  # where it came from: file and line
    messages: list[dict[str, Any]]
    trained: str


@dataclass(slots=True)
class ParityCase:
    label: str
    ok: bool
    position: int | None = None  # first differing character (None when equal)
    trained: str = ""  # what training wrote from there on (CONTEXT characters)
    served: str = ""  # what the server wrote from there on (CONTEXT characters)
    prompt_tokens: int | None = None  # what the server counted for the chat request
    expected_tokens: int | None = None  # the token count of the server's rendered text


@dataclass(slots=True)
class TemplateParity:
    path: str  # which template path was checked
    cases: list[ParityCase] = field(default_factory=list)
    required: bool = True  # the template checked is the training one (not a base model's own): a mismatch fails

    @property
    def ok(self) -> bool:
        return bool(self.cases) and all(c.ok for c in self.cases)

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "ok": self.ok, "required": self.required, "cases": [asdict(c) for c in self.cases]}


def first_difference(trained: str, served: str) -> int | None:
    """The index of the first character where the two texts differ (the shorter one's end), or None."""
    for index, (a, b) in enumerate(zip(trained, served)):
        if a != b:
            return index
    return None if len(trained) == len(served) else min(len(trained), len(served))


def compare(label: str, trained: str, served: str) -> ParityCase:
    position = first_difference(trained, served)
    if position is None:
        return ParityCase(label, True)
    return ParityCase(label, False, position, trained[position:position + CONTEXT], served[position:position + CONTEXT])


def held_out(fmt: Any, info: dict[str, Any], limit: int = 3) -> list[Conversation]:
    """Up to `limit` conversations from the run's eval data, else its training data, that a chat client can send
    (an instruction with an input, or a Q&A record with a context, has no chat form and is passed over)."""
    paths = [s["path"] for s in ((info.get("eval_data") or {}).get("sources") or [])]
    paths = paths or [s["path"] for s in info["data"].get("sources", [])]
    found: list[Conversation] = []
    for path in paths:
        if not Path(path).is_file():
            continue
        with open(path, encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, 1):
                if line_no > SCAN:
                    break
                conversation = _conversation(fmt, line, Locator(str(path), line=line_no))
                if conversation is not None:
                    found.append(conversation)
                if len(found) >= limit:
                    return found
    return found


def _conversation(fmt: Any, line: str, locator: Locator) -> Conversation | None:
    from pydantic import ValidationError

    from ..schemas.records import RecordKind, convert_record, record_model

    try:
        data = json.loads(line)
        kind = RecordKind.chat if "messages" in data else RecordKind.qa if "question" in data else RecordKind.instruction
        record = convert_record(record_model(kind).model_validate(data), RecordKind(fmt.kind))
    except (ValueError, TypeError, ValidationError):
        return None
    messages = _messages(record)
    rendered = fmt.renderer.render(record, locator)
    if messages is None or not isinstance(rendered, Rendered) or not any(s.train for s in rendered.segments):
        return None
    return Conversation(f"{Path(locator.file).name}:{locator.line}", messages, rendered.split()[0])


def _messages(record: Any) -> list[dict[str, Any]] | None:
    """The messages a client sends to be answered with the record's last trained turn."""
    kind = getattr(record, "kind", "")
    if kind == "instruction":
        if record.input:
            return None
        return ([{"role": "system", "content": record.system}] if record.system else []) + \
            [{"role": "user", "content": record.instruction}]
    if kind == "qa":
        return None if record.context else [{"role": "user", "content": record.question}]
    turns = [m.model_dump(mode="json", exclude_none=True, exclude={"weight"}) for m in record.messages]
    last = max(i for i, m in enumerate(turns) if m["role"] == "assistant")
    return turns[:last]


class ServerTemplate:
    """The chat formatting of llama-cpp-python's server for one GGUF, as its /v1/chat/completions applies it."""

    def __init__(self, gguf: Path) -> None:
        from llama_cpp import Llama, llama_chat_format

        self.llm = Llama(model_path=str(gguf), vocab_only=True, verbose=False)
        llm = self.llm
        # Llama.create_chat_completion's own resolution (llama_cpp/llama.py), on a Llama built as the server builds it
        handler = (llm.chat_handler or llm._chat_handlers.get(llm.chat_format)
                   or llama_chat_format.get_chat_completion_handler(llm.chat_format))
        self.format = llm.chat_format
        self.formatter = inspect.getclosurevars(handler).nonlocals.get("chat_formatter")
        if self.formatter is None:
            raise BackendError(f"llama-cpp-python's chat handler {self.format!r} has no prompt formatter to render "
                               "with", file=str(gguf))

    def render(self, messages: list[dict[str, Any]]) -> tuple[str, int]:
        """The prompt text the server builds for these messages, and its token count as the server tokenizes it."""
        result = self.formatter(messages=messages)
        ids = self.llm.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True)
        return result.prompt, len(ids)


def check_rendered(path: str, conversations: list[Conversation],
                   render: Callable[[list[dict[str, Any]]], str]) -> TemplateParity:
    """Each conversation rendered by `render` (a server's template endpoint) and compared with training's text."""
    parity = TemplateParity(path)
    for conversation in conversations:
        parity.cases.append(compare(conversation.label, conversation.trained, render(conversation.messages)))
    return parity


def check_parity(gguf: Path, conversations: list[Conversation],
                 served_tokens: Callable[[list[dict[str, Any]]], int] | None = None) -> TemplateParity:
    """Each conversation rendered by the server's template path and compared with training's text;
    `served_tokens` (a chat request to the running server → its usage.prompt_tokens) confirms the server used it."""
    server = ServerTemplate(gguf)
    parity = TemplateParity(f"llama-cpp-python /v1/chat/completions ({server.format}, the GGUF's chat template)")
    for conversation in conversations:
        served, tokens = server.render(conversation.messages)
        case = compare(conversation.label, conversation.trained, served)
        if served_tokens is not None:
            case.prompt_tokens, case.expected_tokens = served_tokens(conversation.messages), tokens
            case.ok = case.ok and case.prompt_tokens == tokens
        parity.cases.append(case)
    return parity
