"""A pairwise judge for `sftdata eval`: which of two answers to a question is better, asked of any
OpenAI-compatible model, each pair in both orders.

Position bias is cancelled by asking twice, the tuned answer first as A and then second as B; a pair is a
win for the tuned model when it wins both orders or one with a tie in the other, a loss the other way
round, and a tie otherwise (split verdicts included). Rates come with 95% Wilson intervals.

The requests go through synth's machinery (sftdata.synthesis): the rate limiter, retries with backoff,
the structured-output fallback (json_schema → json_object → none) and an append-only request cache
(OUT.judge-cache.jsonl, keyed by the request's content and the judge model): a second run replays it
without sending anything, and a killed run resumes by sending only the requests it has no reply for.
The prompt is a template in templates/ (judge_pairwise_ko, judge_pairwise_en) or a .jinja file.
"""
from __future__ import annotations

import asyncio
import hashlib
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from ..errors import OptionError
from ..synthesis.backends import FormatChooser, FormatRefused, OpenAIBackend
from ..synthesis.limits import Permanent, RateLimiter, RetriesExhausted, RetryPolicy, with_retries
from ..synthesis.requests import ChatRequest, Reply
from ..synthesis.store import RequestCache
from ..synthesis.tasks import extract_json, load_prompt_template

Winner = Literal["A", "B", "tie"]
SCHEMA = {"type": "object", "additionalProperties": False, "required": ["winner", "reason"],
          "properties": {"winner": {"type": "string", "enum": ["A", "B", "tie"]}, "reason": {"type": "string"}}}


@dataclass(slots=True)
class JudgeOptions:
    base_url: str
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    lang: Literal["ko", "en"] = "ko"
    template: str | None = None
    versus: Literal["base", "reference"] = "base"
    concurrency: int = 4
    rpm: float | None = None
    tpm: float | None = None
    timeout: float = 120.0
    retries: int = 6
    backoff: float = 1.0
    max_tokens: int = 256
    response_format: Literal["auto", "json_schema", "json_object", "none"] = "auto"


@dataclass(slots=True)
class Pair:
    question: str
    reference: str
    tuned: str
    other: str  # the base's answer, or the reference


@dataclass(slots=True)
class Verdict:
    first: Winner | None  # the tuned answer shown as A
    second: Winner | None  # the tuned answer shown as B
    reasons: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def outcome(self) -> Literal["win", "tie", "loss"] | None:
        if self.first is None or self.second is None:
            return None
        score = {"A": 1, "tie": 0, "B": -1}[self.first] - {"A": 1, "tie": 0, "B": -1}[self.second]
        return "win" if score > 0 else "loss" if score < 0 else "tie"


@dataclass(slots=True)
class JudgeStats:
    requests: int = 0  # sent to the server
    cached: int = 0  # replayed from the cache
    retries: int = 0
    failed: Counter[str] = field(default_factory=Counter)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 0.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4))


def summarise(verdicts: list[Verdict]) -> dict[str, Any]:
    outcomes = Counter(v.outcome for v in verdicts if v.outcome is not None)
    judged = sum(outcomes.values())
    out: dict[str, Any] = {"pairs": len(verdicts), "judged": judged,
                           "unjudged": len(verdicts) - judged,
                           "consistent": sum(1 for v in verdicts if v.outcome is not None and
                                             {v.first, v.second} != {"A"} and {v.first, v.second} != {"B"})}
    for name in ("win", "tie", "loss"):
        out[f"{name}_rate"] = round(outcomes[name] / judged, 4) if judged else 0.0
        out[f"{name}_ci95"] = wilson(outcomes[name], judged)
    return out


class Judge:
    def __init__(self, options: JudgeOptions, cache: Path, seed: int = 0) -> None:
        self.options = options
        name = options.template or f"judge_pairwise_{options.lang}"
        self.template = load_prompt_template(name)
        self.backend = OpenAIBackend(options.base_url, options.model, options.api_key_env, options.timeout)
        self.limiter = RateLimiter(options.rpm, options.tpm)
        self.policy = RetryPolicy(options.retries, options.backoff)
        self.chooser = FormatChooser(options.response_format)
        self.cache = RequestCache(cache)
        self.rng = random.Random(seed)
        self.stats = JudgeStats()

    def describe(self) -> dict[str, Any]:
        return {**self.backend.describe(), "template": self.template.ref(), "versus": self.options.versus,
                "cache": str(self.cache.path)}

    def judge(self, pairs: list[Pair]) -> list[Verdict]:
        return asyncio.run(self._judge(pairs))

    async def _judge(self, pairs: list[Pair]) -> list[Verdict]:
        self.cache.open()
        try:
            await self.backend.start()
            gate = asyncio.Semaphore(max(1, self.options.concurrency))
            verdicts = await asyncio.gather(*(self._pair(p, gate) for p in pairs))
        finally:
            self.cache.close()
            await self.backend.close()
        return list(verdicts)

    async def _pair(self, pair: Pair, gate: asyncio.Semaphore) -> Verdict:
        verdict = Verdict(None, None)
        for position, (a, b) in enumerate(((pair.tuned, pair.other), (pair.other, pair.tuned))):
            variables = {"question": pair.question, "answer_a": a, "answer_b": b,
                         "reference": pair.reference if self.options.versus == "base" else ""}
            try:
                async with gate:
                    winner, reason = await self._ask(variables)
            except (RetriesExhausted, Permanent) as error:
                verdict.error = f"{error.reason}: {error.message}"
                self.stats.failed[error.reason] += 1
                return verdict
            verdict.reasons.append(reason)
            if winner is None:
                self.stats.failed["unparsed_reply"] += 1
            if position == 0:
                verdict.first = winner
            else:
                verdict.second = winner
        return verdict

    def _request(self, variables: dict[str, Any]) -> tuple[ChatRequest, str]:
        request = ChatRequest(self.template.messages(variables), self.options.max_tokens, 0.0, 1.0, seed=0,
                              schema=SCHEMA, schema_name="sftdata_judge")
        content = {"v": 1, "judge": self.template.sha256, "messages": request.messages,
                   "sampling": request.sampling(), "schema": SCHEMA, "model": self.backend.model}
        return request, hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()

    async def _ask(self, variables: dict[str, Any]) -> tuple[Winner | None, str]:
        request, key = self._request(variables)
        cached = self.cache.get(key)
        if cached is not None:
            self.stats.cached += 1
            reply = Reply.from_dict(cached["reply"])
        else:
            reply = await self._send(request)
            self.cache.remember(key, {"request": {"messages": request.messages, "sampling": request.sampling()},
                                      "model": self.backend.model, "reply": reply.as_dict()})
        return parse_verdict(reply.text)

    async def _send(self, request: ChatRequest) -> Reply:
        estimate = sum(len(m["content"].encode()) for m in request.messages) // 3 + request.max_tokens
        refused: FormatRefused | None = None
        for fmt in self.chooser.order():
            try:
                reply = await with_retries(lambda: self.backend.complete(request, fmt), self.policy, self.limiter,  # noqa: B023
                                           estimate, self.rng, self._on_retry)
            except FormatRefused as error:
                refused = error
                continue
            self.chooser.confirm(fmt)
            self.limiter.settle(estimate, reply.prompt_tokens + reply.completion_tokens)
            self.stats.requests += 1
            return reply
        assert refused is not None
        raise Permanent("response_format_refused", f"every response format was refused; last: {refused.message}")

    def _on_retry(self, error: Any, wait: float) -> None:
        self.stats.retries += 1


def parse_verdict(text: str) -> tuple[Winner | None, str]:
    """The winner of a judge's reply (JSON, or a bare A/B/tie); None when it names none (the pair is then
    counted as unjudged, not as a tie)."""
    data = extract_json(text)
    if isinstance(data, dict) and str(data.get("winner", "")).strip() in ("A", "B", "tie"):
        return str(data["winner"]).strip(), str(data.get("reason", ""))[:500]  # type: ignore[return-value]
    bare = text.strip().strip('"').upper()
    if bare in ("A", "B"):
        return bare, ""  # type: ignore[return-value]
    return None, f"unparsed reply: {text[:200]}"


def check_options(options: JudgeOptions) -> None:
    if options.lang not in ("ko", "en"):
        raise OptionError("is not a judge language", option="judge_lang", value=options.lang, hint="use ko or en")
    if options.versus not in ("base", "reference"):
        raise OptionError("is unknown", option="judge_versus", value=options.versus, hint="use base or reference")
