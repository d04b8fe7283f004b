"""The three synth modes: which requests to send (a deterministic plan) and how to read the replies.

- self-instruct: request i shows k seeds, sampled with a generator seeded by (--seed, i), and asks
  for new tasks with inputs and outputs;
- answer: one request per seed that has no output (few-shot examples from seeds that have one);
  a seed whose answer was rejected is asked again, with another sampling seed, after the others;
- evolve: request i rewrites seed perm[i mod N] with a method drawn from (--seed, i) and answers it.

Request i is the same on every run with the same options, so its content hash finds the reply of
an earlier, interrupted run in the cache. Prompt text comes only from the templates; seeds and
model text are passed as variables to the sandboxed Jinja environment.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import orjson
from jinja2 import nodes
from jinja2.sandbox import SecurityError
from pydantic import ValidationError

from .. import templates as registry
from ..errors import InputError, TemplateError
from ..ingest.readers import expand_sources, read_items
from ..rendering.templating import make_env, read_template
from ..schemas.records import InstructionRecord
from .gates import Verdict
from .requests import ChatRequest

MODES = ("self-instruct", "answer", "evolve")
EVOLVE_METHODS = ("constraints", "deepen", "concretize", "reasoning")


@dataclass(frozen=True, slots=True)
class Seed:
    id: str
    instruction: str
    input: str
    output: str | None
    where: str

    def example(self) -> dict[str, str]:
        return {"instruction": self.instruction, "input": self.input, "output": self.output or ""}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def seed_from_row(data: Any, where: str) -> Seed:
    """An instruction, Q&A or chat record (first user turn = instruction); the output may be missing."""
    if not isinstance(data, dict):
        raise InputError(f"a seed must be a JSON object, found {type(data).__name__}", file=where)
    if isinstance(data.get("messages"), list):
        turns = [m for m in data["messages"] if isinstance(m, dict)]
        users = [i for i, m in enumerate(turns) if m.get("role") == "user"]
        instruction = _text(turns[users[0]].get("content")) if users else None
        after = turns[users[0] + 1:] if users else []
        output = _text(after[0].get("content")) if after and after[0].get("role") == "assistant" else None
        input_ = ""
    else:
        instruction = _text(data.get("instruction")) or _text(data.get("question"))
        input_ = data.get("input") if isinstance(data.get("input"), str) else data.get("context") or ""
        output = _text(data.get("output")) or _text(data.get("answer"))
    if instruction is None:
        raise InputError("the seed has no instruction (nor question, nor user turn)", file=where)
    if not isinstance(input_, str):
        raise InputError("the seed's input must be text", file=where)
    ident = data.get("id")
    if not isinstance(ident, (str, int)) or isinstance(ident, bool):
        ident = "sha:" + hashlib.sha256(f"{instruction}\n{input_}".encode()).hexdigest()[:12]
    return Seed(str(ident), instruction, input_, output, where)


def load_seeds(path: str | Path) -> list[Seed]:
    """Seeds from records JSONL (as `convert` writes it); a bad row stops the run naming its line."""
    seeds: list[Seed] = []
    for item in read_items(expand_sources([path])):
        if not hasattr(item, "data"):  # a Reject from the reader: unparseable line
            raise InputError(f"{item.message}", file=str(item.locator))  # type: ignore[union-attr]
        seeds.append(seed_from_row(item.data, str(item.locator)))
    if not seeds:
        raise InputError("no seeds", file=str(path))
    ids = [s.id for s in seeds]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InputError(f"seed id {dup!r} appears more than once", file=str(path))
    return seeds


@dataclass(slots=True)
class PromptTemplate:
    name: str
    source: str
    origin: str
    compiled: jinja2.Template

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.source.encode("utf-8")).hexdigest()

    def ref(self) -> dict[str, str]:
        return {"name": self.name, "sha256": self.sha256}

    def messages(self, variables: dict[str, Any]) -> list[dict[str, str]]:
        try:
            context = self.compiled.new_context(variables)
            system = "".join(self.compiled.blocks["system"](context)).strip()
            user = "".join(self.compiled.blocks["user"](context)).strip()
        except TemplateError:
            raise
        except (jinja2.TemplateError, SecurityError, TypeError, ValueError, AttributeError) as error:
            raise TemplateError(f"template error: {error}", file=self.origin) from None
        return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]


def default_template(mode: str, lang: str) -> str:
    return f"synth_{mode.replace('-', '_')}_{lang}"


def load_prompt_template(name_or_path: str) -> PromptTemplate:
    """A built-in synth template name or a .jinja file with {% block system %} and {% block user %}."""
    builtin = registry.SYNTH.get(name_or_path) or registry.JUDGE.get(name_or_path)
    path = builtin.path if builtin else Path(name_or_path)
    if not path.is_file():
        raise TemplateError(f"unknown synth template {name_or_path!r}",
                            hint=f"use one of {', '.join(registry.SYNTH)} or a .jinja file")
    source = read_template(path)
    env = make_env()
    name = builtin.name if builtin else path.stem
    try:
        blocks = {b.name for b in env.parse(source, name=name, filename=str(path)).find_all(nodes.Block)}
        compiled = env.template_class.from_code(env, env.compile(source, name=name, filename=str(path)),
                                                env.make_globals(None))
    except jinja2.TemplateSyntaxError as error:
        raise TemplateError(f"template syntax error: {error.message}", file=str(path), line=error.lineno) from None
    if "user" not in blocks:
        raise TemplateError("a synth template needs {% block user %} (and optionally {% block system %})",
                            file=str(path))
    if "system" not in blocks:
        compiled.blocks["system"] = lambda context: iter(())
    return PromptTemplate(name, source, str(path), compiled)


def _field(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "string", "description": InstructionRecord.model_fields[name].description}
    if name != "input":
        spec["minLength"] = 1  # servers that build a grammar from the schema then never send ""
    return spec


_TASK = {"type": "object", "properties": {k: _field(k) for k in ("instruction", "input", "output")},
         "required": ["instruction", "input", "output"], "additionalProperties": False}


def reply_schema(mode: str, per_request: int) -> dict[str, Any]:
    """The JSON Schema a reply must match (structured output); fields follow InstructionRecord."""
    if mode == "answer":
        return {"type": "object", "properties": {"output": _field("output")}, "required": ["output"],
                "additionalProperties": False}
    if mode == "evolve":
        return _TASK
    return {"type": "object", "properties": {"tasks": {"type": "array", "items": _TASK, "minItems": 1,
                                                       "maxItems": per_request}},
            "required": ["tasks"], "additionalProperties": False}


@dataclass(frozen=True, slots=True)
class Spec:
    """One planned request: its place in the plan, the seeds it uses, and its content hash."""

    index: int
    seeds: tuple[Seed, ...]
    request: ChatRequest
    key: str
    method: str | None = None
    target: Seed | None = None  # answer mode: the seed being answered
    attempt: int = 0

    @property
    def seed_ids(self) -> list[str]:
        return [s.id for s in self.seeds]


WAIT = object()  # the plan has nothing to send until a request in flight finishes


@dataclass
class Task:
    mode: str
    template: PromptTemplate
    seeds: list[Seed]
    seed: int = 0
    few_shot: int = 3
    per_request: int = 3
    max_tokens: int = 1024
    temperature: float = 0.7
    top_p: float = 1.0
    key_context: dict[str, Any] | None = None  # backend, model, response format: part of the request key

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}")
        self.schema = reply_schema(self.mode, self.per_request)
        self.answered = [s for s in self.seeds if s.output]
        self.targets = [s for s in self.seeds if not s.output]
        self._order = list(range(len(self.seeds)))
        random.Random(f"{self.seed}:order").shuffle(self._order)

    def _spec(self, index: int, variables: dict[str, Any], seeds: tuple[Seed, ...], rng_key: str,
              **extra: Any) -> Spec:
        request = ChatRequest(self.template.messages(variables), self.max_tokens, self.temperature, self.top_p,
                              seed=int(hashlib.sha256(rng_key.encode()).hexdigest()[:7], 16),
                              schema=self.schema, schema_name=f"sftdata_{self.mode.replace('-', '_')}")
        content = {"v": 1, "mode": self.mode, "template": self.template.sha256, "messages": request.messages,
                   "sampling": request.sampling(), "schema": self.schema, **(self.key_context or {})}
        key = hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()
        return Spec(index, seeds, request, key, **extra)

    def spec(self, index: int) -> Spec:
        """Request `index` of a self-instruct or evolve plan."""
        rng = random.Random(f"{self.seed}:{index}")
        if self.mode == "self-instruct":
            shown = tuple(rng.sample(self.seeds, min(self.few_shot, len(self.seeds))))
            return self._spec(index, {"examples": [s.example() for s in shown], "count": self.per_request},
                              shown, f"{self.seed}:{index}")
        seed = self.seeds[self._order[index % len(self.seeds)]]
        method = rng.choice(EVOLVE_METHODS)
        return self._spec(index, {"instruction": seed.instruction, "input": seed.input,
                                  "output": seed.output or "", "method": method},
                          (seed,), f"{self.seed}:{index}", method=method, attempt=index // len(self.seeds))

    def answer_spec(self, index: int, target: Seed, attempt: int) -> Spec:
        rng = random.Random(f"{self.seed}:{target.id}:{attempt}")
        shown = rng.sample(self.answered, min(self.few_shot, len(self.answered)))
        return self._spec(index, {"instruction": target.instruction, "input": target.input,
                                  "examples": [s.example() for s in shown]},
                          (target, *shown), f"{self.seed}:{target.id}:{attempt}", target=target, attempt=attempt)

    def parse(self, text: str, finish_reason: str | None, spec: Spec) -> list[InstructionRecord | Verdict]:
        """The candidate records of a reply (or the reason it holds none), in reply order."""
        data = extract_json(text)
        if self.mode == "answer" and data is None and text.strip() and "{" not in text:
            if finish_reason == "length":
                return [Verdict("truncated", "the answer was cut off at max_tokens")]
            data = {"output": text.strip()}  # plain-text answer from a server without structured output
        if data is None:
            if finish_reason == "length":
                return [Verdict("truncated", "the reply was cut off at max_tokens before its JSON was complete")]
            return [Verdict("invalid_json", "no JSON object found in the reply")]
        if self.mode == "answer":
            assert spec.target is not None
            output = data.get("output", data.get("answer")) if isinstance(data, dict) else None
            items: list[Any] = [{"instruction": spec.target.instruction, "input": spec.target.input,
                                 "output": output}]
        elif isinstance(data, dict) and isinstance(data.get("tasks"), list):
            items = data["tasks"]
        elif isinstance(data, list):
            items = data
        else:
            items = [data]
        if self.mode == "evolve":
            items = items[:1]
        elif self.mode == "self-instruct":
            items = items[: self.per_request]
        if not items:
            return [Verdict("invalid_record", "the reply holds no tasks")]
        return [_record(item) for item in items]


def _record(item: Any) -> InstructionRecord | Verdict:
    if not isinstance(item, dict):
        return Verdict("invalid_record", f"a task must be a JSON object, found {type(item).__name__}")
    fields = {k: item.get(k) for k in ("instruction", "input", "output")}
    if fields["input"] is None:
        fields["input"] = ""
    missing = [k for k in ("instruction", "output") if fields[k] is None]
    if missing:
        return Verdict("invalid_record", f"the reply has no {' and no '.join(missing)}")
    try:
        return InstructionRecord.model_validate(fields)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return Verdict("invalid_record", f"{where}: {first['msg']}")


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def extract_json(text: str) -> Any:
    """The first JSON object or array in a reply: the whole text, a fenced block, or embedded."""
    text = text.strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    for block in _FENCE.findall(text):
        try:
            return json.loads(block)
        except ValueError:
            continue
    decoder = json.JSONDecoder()
    starts = [i for i, ch in enumerate(text) if ch in "{["][:64]
    for start in starts:
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if isinstance(value, (dict, list)):
            return value
    return None


class Planner:
    """Hands out the next request of the plan, within the --max-requests budget.

    self-instruct and evolve walk the index; answer mode keeps a queue of seeds still unanswered
    (skipping those answered by an earlier run) and puts a seed back after a rejected answer."""

    def __init__(self, task: Task, budget: int, answered: set[str]) -> None:
        self.task, self.budget, self.used = task, budget, 0
        self.queue: deque[tuple[Seed, int]] = deque((s, 0) for s in task.targets if s.id not in answered)
        self.pending = 0

    def next(self) -> Spec | object | None:
        if self.used >= self.budget:
            return None
        if self.task.mode != "answer":
            spec = self.task.spec(self.used)
        elif self.queue:
            target, attempt = self.queue.popleft()
            spec = self.task.answer_spec(self.used, target, attempt)
        else:
            return WAIT if self.pending else None
        self.used += 1
        self.pending += 1
        return spec

    def finished(self, spec: Spec, accepted: bool) -> None:
        self.pending -= 1
        if spec.target is not None and not accepted:
            self.queue.append((spec.target, spec.attempt + 1))
