"""`synth()`: seeds → requests → replies → gated records, appended as they arrive.

C workers share one plan, one rate limiter and one store. A worker takes the next request of the
plan, answers it from the cache or the backend (retries, limits, response-format fallback), parses
the reply into candidate records, passes each through the gates and appends the accepted ones.
The run ends when the output holds COUNT records (requests still in flight are cancelled), when the
--max-requests budget is spent (exit 1), or when the backend keeps failing (exit 1). Everything
needed to resume is on disk at every moment (see store.py); the same command continues the run.
"""
from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..ingest.records import record_row
from ..items import Counts
from ..provenance import build_meta
from ..writers import meta_path, write_json
from .backends import FormatChooser, FormatRefused, make_backend
from .gates import Gates, Verdict, load_deny_list, novelty_text
from .limits import Permanent, RateLimiter, RetriesExhausted, RetryPolicy, Transient, with_retries
from .novelty import NoveltyIndex
from .requests import Reply
from .store import Store, synth_meta
from .tasks import MODES, WAIT, Planner, Spec, Task, default_template, load_prompt_template, load_seeds


@dataclass
class SynthOptions:
    mode: str = "self-instruct"
    count: int = 100
    model: str | None = None
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 4
    rpm: float | None = None
    tpm: float | None = None
    template: str | None = None
    lang: str | None = None  # the prompts' language (en when None); given, answers are checked to be in it
    seed: int = 0
    max_requests: int | None = None  # default 10 x count
    response_format: str = "auto"
    max_tokens: int = 1024
    temperature: float = 0.7
    top_p: float = 1.0
    few_shot: int = 3
    per_request: int = 3
    timeout: float = 120.0
    retries: int = 6
    backoff: float = 1.0
    novelty: float = 0.5
    check_lang: bool | None = None  # None: check when lang was given
    deny_list: str | None = None
    min_instruction_chars: int = 5
    min_output_chars: int = 2
    max_output_chars: int = 10000
    price_in: float | None = None  # per 1M prompt tokens
    price_out: float | None = None  # per 1M completion tokens
    max_failures_in_a_row: int | None = None  # default max(3, concurrency + 1)


@dataclass
class Snapshot:
    """Progress of a run, handed to the progress callback after every request."""

    target: int
    accepted: int = 0
    resumed: int = 0
    rejected: int = 0
    failed: int = 0
    requested: int = 0
    cached: int = 0
    retries: int = 0
    in_flight: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    started: float = field(default_factory=time.perf_counter)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @property
    def request_rate(self) -> float:
        """Requests answered by the backend per second."""
        return self.requested / self.elapsed if self.elapsed > 0 else 0.0


@dataclass
class SynthResult:
    output: Path
    complete: bool
    stopped: str | None
    summary_data: dict[str, Any]
    examples: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return self.summary_data


Progress = Callable[[Snapshot], None]


def synth(seeds: str | os.PathLike[str], output: str | os.PathLike[str], options: SynthOptions | None = None,
          progress: Progress | None = None, **overrides: Any) -> SynthResult:
    """Generate records from seeds into `output` until it holds `options.count` of them.

    Re-running with the same arguments resumes an interrupted run. Raises SftDataError subclasses
    for bad seeds, templates or a backend that cannot work at all."""
    options = options or SynthOptions()
    for name, value in overrides.items():
        setattr(options, name, value)
    return asyncio.run(_Run(Path(seeds), Path(output), options, progress).run())


class _Run:
    def __init__(self, seeds: Path, output: Path, options: SynthOptions, progress: Progress | None) -> None:
        o = self.options = options
        if o.mode not in MODES:
            raise InputError(f"unknown mode {o.mode!r}", hint=f"use one of {', '.join(MODES)}")
        if o.count < 1 or o.concurrency < 1 or o.per_request < 1 or o.max_tokens < 1:
            raise InputError("count, concurrency, per-request and max-tokens must be at least 1")
        self.lang_given = o.lang is not None
        o.lang = o.lang or "en"
        if o.lang not in ("en", "ko"):
            raise InputError(f"unknown language {o.lang!r}", hint="use en or ko")
        self.seeds_path, self.output, self.progress = seeds, output, progress
        self.seeds = load_seeds(seeds)
        self.template = load_prompt_template(o.template or default_template(o.mode, o.lang))
        self.chooser = FormatChooser(o.response_format)
        self.limiter = RateLimiter(o.rpm, o.tpm)
        self.policy = RetryPolicy(retries=o.retries, base=o.backoff)
        self.rng = random.Random(f"{o.seed}:jitter")
        self.state = Snapshot(target=o.count)
        self.by_reason: Counter[str] = Counter()
        self.failed_by: Counter[str] = Counter()
        self.retried_by: Counter[str] = Counter()
        self.generated = self.surplus = 0
        self.examples: list[dict[str, Any]] = []
        self.stop = asyncio.Event()
        self.stopped: str | None = None
        self.failures_in_a_row = 0
        self.max_failures = o.max_failures_in_a_row or max(3, o.concurrency + 1)

    async def run(self) -> SynthResult:
        o = self.options
        started = time.perf_counter()
        store = self.store = Store(self.output).open()
        backend: Any = None
        try:
            backend = self.backend = make_backend(o.base_url, o.model, o.api_key_env, o.timeout, o.concurrency)
            self._prepare(store)
            if self.state.accepted < o.count:
                await backend.start()
                self.task.key_context = {"backend": backend.kind, "model": backend.model,
                                         "response_format": o.response_format}
                workers = [asyncio.create_task(self._worker()) for _ in range(o.concurrency)]
                stopper = asyncio.create_task(self.stop.wait())
                try:
                    while True:
                        await asyncio.wait([*workers, stopper], return_when=asyncio.FIRST_COMPLETED)
                        if self.stop.is_set() or all(w.done() for w in workers) or any(
                                w.done() and not w.cancelled() and w.exception() for w in workers):
                            break
                finally:
                    for task in [*workers, stopper]:
                        task.cancel()
                    results = await asyncio.gather(*workers, return_exceptions=True)
                for outcome in results:  # a BackendError in one worker stops the run with it
                    if isinstance(outcome, Exception) and not isinstance(outcome, asyncio.CancelledError):
                        raise outcome
        finally:
            if backend is not None:
                await backend.close()
            store.close()
            if hasattr(self, "task"):
                self._write_meta(started)
        return self._result(started)

    def _prepare(self, store: Store) -> None:
        o = self.options
        self.task = Task(o.mode, self.template, self.seeds, seed=o.seed, few_shot=o.few_shot,
                         per_request=o.per_request, max_tokens=o.max_tokens, temperature=o.temperature,
                         top_p=o.top_p)
        novelty = None
        if o.mode != "answer":
            novelty = NoveltyIndex(o.novelty)
            for seed in self.seeds:
                novelty.add(f"{seed.instruction}\n{seed.input}" if seed.input else seed.instruction,
                            f"seed {seed.id}")
        answered: set[str] = set()
        for number, row in enumerate(store.rows, 1):
            synth = synth_meta(row)
            if novelty is not None and isinstance(row.get("instruction"), str):
                extra = row.get("input") if isinstance(row.get("input"), str) else ""
                novelty.add(f"{row['instruction']}\n{extra}" if extra else row["instruction"], f"output line {number}")
            if synth.get("mode") == "answer" and synth.get("seed_ids"):
                answered.add(synth["seed_ids"][0])
        check = self.lang_given if o.check_lang is None else o.check_lang
        self.gates = Gates(deny=load_deny_list(o.deny_list), lang=o.lang if check else None,
                           novelty=novelty, min_instruction_chars=o.min_instruction_chars,
                           min_output_chars=o.min_output_chars,
                           max_output_chars=o.max_output_chars)
        self.state.accepted = self.state.resumed = len(store.rows)
        if o.mode == "answer":
            if not self.task.targets:
                raise InputError("answer mode needs seeds without an output; every seed has one",
                                 file=str(self.seeds_path))
            possible = len(store.rows) + len([t for t in self.task.targets if t.id not in answered])
            if possible < o.count:
                raise InputError(f"answer mode can reach at most {possible} records here "
                                 f"({len(store.rows)} already in the output, "
                                 f"{possible - len(store.rows)} seeds left to answer); lower -n",
                                 file=str(self.seeds_path))
        self.planner = Planner(self.task, o.max_requests or 10 * o.count, answered)

    # -- one worker -----------------------------------------------------------------------------
    async def _worker(self) -> None:
        while not self.stop.is_set():
            spec = self.planner.next()
            if spec is None:
                return
            if spec is WAIT:
                await asyncio.sleep(0.05)
                continue
            assert isinstance(spec, Spec)
            accepted = False
            try:
                cached = self.store.cache.get(spec.key)
                if cached is not None:
                    reply = Reply.from_dict(cached["reply"])
                    self.state.cached += 1
                else:
                    reply = await self._send(spec)
                accepted = self._process(spec, reply)
            except (RetriesExhausted, Permanent) as error:
                self._failed(spec, error)
            finally:
                self.planner.finished(spec, accepted)
                self._emit()

    async def _send(self, spec: Spec) -> Reply:
        state, request = self.state, spec.request
        estimate = sum(len(m["content"].encode()) for m in request.messages) // 3 + request.max_tokens
        refused: FormatRefused | None = None
        state.in_flight += 1
        try:
            for fmt in self.chooser.order():
                try:
                    reply = await with_retries(lambda: self.backend.complete(request, fmt), self.policy,  # noqa: B023
                                               self.limiter, estimate, self.rng, self._on_retry)
                except FormatRefused as error:
                    refused = error
                    continue
                self.chooser.confirm(fmt)
                break
            else:
                assert refused is not None
                raise Permanent("response_format_refused", f"every response format was refused; last: "
                                                           f"{refused.message}")
        finally:
            state.in_flight -= 1
        self.limiter.settle(estimate, reply.prompt_tokens + reply.completion_tokens)
        state.requested += 1
        state.prompt_tokens += reply.prompt_tokens
        state.completion_tokens += reply.completion_tokens
        self.failures_in_a_row = 0
        self.store.remember(spec.key, {"index": spec.index, "seed_ids": spec.seed_ids,
                                       "request": {"messages": request.messages, "sampling": request.sampling(),
                                                   "schema_name": request.schema_name},
                                       "backend": self.backend.kind, "model": self.backend.model,
                                       "reply": reply.as_dict()})
        return reply

    def _on_retry(self, error: Transient, wait: float) -> None:
        self.state.retries += 1
        self.retried_by[error.reason] += 1
        self._emit()

    def _failed(self, spec: Spec, error: RetriesExhausted | Permanent) -> None:
        self.state.failed += 1
        self.failed_by[error.reason] += 1
        row = {"stage": "request", "reason": error.reason, "message": error.message, "request_key": spec.key,
               "request_index": spec.index, "seed_ids": spec.seed_ids}
        self.store.reject(row)
        self._example(row)
        self.failures_in_a_row += 1
        if self.failures_in_a_row >= self.max_failures and not self.stop.is_set():
            self.stopped = (f"{self.failures_in_a_row} requests in a row failed (last: {error.reason}: "
                            f"{error.message})")
            self.stop.set()

    # -- gating ---------------------------------------------------------------------------------
    def _process(self, spec: Spec, reply: Reply) -> bool:
        """Gate and append the candidates of one reply; True when one of them is in the output."""
        accepted_any = False
        for item, candidate in enumerate(self.task.parse(reply.text, reply.finish_reason, spec)):
            if isinstance(candidate, Verdict):
                self._reject(spec, item, candidate, "parse", {"reply": reply.text})
                continue
            self.generated += 1
            if (spec.key, item) in self.store.accepted_keys:  # written by an earlier run
                accepted_any = True
                continue
            if self.state.accepted >= self.options.count:
                self.surplus += 1
                continue
            verdict = self.gates.check(candidate)
            if verdict is not None:
                self._reject(spec, item, verdict, "gate", {"record": candidate.model_dump(exclude={"meta"})})
                continue
            record = candidate.model_copy(update={"meta": {"synth": self._provenance(spec, reply, item)}})
            self.store.accept(record_row(record))
            if self.gates.novelty is not None:
                self.gates.novelty.add(novelty_text(candidate), f"output line {len(self.store.rows)}")
            self.state.accepted += 1
            accepted_any = True
            if self.state.accepted >= self.options.count:
                self.stop.set()
        return accepted_any

    def _reject(self, spec: Spec, item: int, verdict: Verdict, stage: str, raw: dict[str, Any]) -> None:
        self.state.rejected += 1
        self.by_reason[verdict.reason] += 1
        row = {"stage": stage, "reason": verdict.reason, "message": verdict.message, "request_key": spec.key,
               "request_index": spec.index, "item": item, "seed_ids": spec.seed_ids, **raw}
        self.store.reject(row)
        self._example(row)

    def _example(self, row: dict[str, Any]) -> None:
        if len(self.examples) < 5:
            self.examples.append(row)

    def _provenance(self, spec: Spec, reply: Reply, item: int) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "mode": self.options.mode, "seed_ids": spec.seed_ids, "backend": self.backend.kind,
            "model": self.backend.model, "template": self.template.ref(), "sampling": spec.request.sampling(),
            "response_format": reply.response_format, "request_id": reply.request_id, "request_key": spec.key,
            "request_index": spec.index, "item": item}
        if spec.method:
            meta["method"] = spec.method
        if spec.target is not None:
            meta["attempt"] = spec.attempt
        return meta

    def _emit(self) -> None:
        if self.progress is not None:
            self.progress(self.state)

    # -- the end --------------------------------------------------------------------------------
    def _summary(self, started: float) -> dict[str, Any]:
        o, s = self.options, self.state
        complete = s.accepted >= o.count
        if not complete and self.stopped is None:
            self.stopped = (f"--max-requests {self.planner.budget} reached with {s.accepted} of {o.count} "
                            "records accepted")
        usage: dict[str, Any] = {"prompt_tokens": s.prompt_tokens, "completion_tokens": s.completion_tokens,
                                 "total_tokens": s.prompt_tokens + s.completion_tokens}
        if o.price_in is not None or o.price_out is not None:
            usage["cost"] = round(s.prompt_tokens / 1e6 * (o.price_in or 0)
                                  + s.completion_tokens / 1e6 * (o.price_out or 0), 6)
        seconds = time.perf_counter() - started
        return {
            "command": "synth", "mode": o.mode, "target": o.count, "accepted": s.accepted,
            "new": s.accepted - s.resumed,
            "resumed": s.resumed, "requested": s.requested, "cached": s.cached, "failed": s.failed,
            "retries": s.retries, "generated": self.generated, "rejected": s.rejected, "surplus": self.surplus,
            "by_reason": dict(sorted(self.by_reason.items())), "failed_by_reason": dict(sorted(self.failed_by.items())),
            "retried_by_reason": dict(sorted(self.retried_by.items())), "usage": usage,
            "complete": complete, "stopped": None if complete else self.stopped,
            "budget": {"max_requests": self.planner.budget, "used": self.planner.used},
            "backend": self.backend.describe() if hasattr(self, "backend") else None,
            "response_format": self.chooser.current, "template": self.template.ref(),
            "seconds": round(seconds, 3),
            "requests_per_minute": round(s.requested / seconds * 60, 2) if seconds > 0 else None,
            "output": str(self.output), "rejects": str(self.store.rejects), "cache": str(self.store.cache_file),
            "repaired": self.store.repaired,
        }

    def _write_meta(self, started: float) -> None:
        o = self.options
        self.summary_data = self._summary(started)
        extra = {"mode": o.mode, "template": [self.template.ref()], "backend": self.summary_data["backend"],
                 "sampling": {"max_tokens": o.max_tokens, "temperature": o.temperature, "top_p": o.top_p,
                              "seed": o.seed, "few_shot": o.few_shot, "per_request": o.per_request},
                 "gates": {"novelty": o.novelty if o.mode != "answer" else None, "check_lang": o.check_lang,
                           "lang": o.lang, "deny_list": o.deny_list or "default"},
                 "limits": {"concurrency": o.concurrency, "rpm": o.rpm, "tpm": o.tpm, "timeout": o.timeout,
                            "retries": o.retries},
                 "cache": str(self.store.cache_file)}
        meta = build_meta("synth", [self.seeds_path], Counts(), self.output, self.store.rejects, extra, started)
        meta["counts"] = {k: self.summary_data[k] for k in (
            "target", "accepted", "new", "resumed", "requested", "cached", "failed", "retries", "generated",
            "rejected", "surplus", "by_reason", "failed_by_reason", "usage", "complete", "stopped")}
        write_json(meta_path(self.output), meta)

    def _result(self, started: float) -> SynthResult:
        summary = getattr(self, "summary_data", None) or self._summary(started)
        return SynthResult(self.output, summary["complete"], summary["stopped"], summary, self.examples)
