"""Throughput limits and retries: request-per-minute and token-per-minute limiters that hold under
bursts, a shared pause for server-directed waits, and retries with exponential backoff, full jitter
and Retry-After.

Every HTTP attempt (retries and response-format fallbacks included) passes `RateLimiter.acquire`,
so the limits hold for what the server actually receives. Concurrency is bounded by the number of
workers the orchestrator starts, not here.
"""
from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class Transient(Exception):
    """A failure worth retrying (429, 5xx, timeout, connection error)."""

    def __init__(self, reason: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.reason, self.message, self.retry_after = reason, message, retry_after


class Permanent(Exception):
    """A failure of this one request that retrying will not fix (e.g. 400 with every response format)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


class RetriesExhausted(Exception):
    def __init__(self, last: Transient, attempts: int) -> None:
        super().__init__(f"{last.message} (gave up after {attempts} attempts)")
        self.last, self.attempts = last, attempts
        self.reason, self.message = last.reason, str(self)


class RateLimiter:
    """RPM as a GCRA schedule (one request every 60/rpm s, no burst), so any window of W seconds
    holds at most W·rpm/60 + 1 requests however many workers arrive at once; TPM as a token bucket
    holding ten seconds' worth of tokens that may go into debt for one large request, so the long-run
    rate is the limit and a minute never sees more than 7/6 of it.
    A `pause(seconds)` (from Retry-After) holds every later acquire back until it has passed."""

    def __init__(self, rpm: float | None = None, tpm: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rpm is not None and rpm <= 0 or tpm is not None and tpm <= 0:
            raise ValueError("rate limits must be positive")
        self.rpm, self.tpm, self.clock = rpm, tpm, clock
        self._interval = 60.0 / rpm if rpm else 0.0
        self._next_slot = 0.0
        self._capacity = tpm / 6.0 if tpm else 0.0
        self._tokens = self._capacity
        self._filled_at = clock()
        self._not_before = 0.0
        self._lock = asyncio.Lock()

    def _refill(self, now: float) -> None:
        if self.tpm:
            self._tokens = min(self._capacity, self._tokens + (now - self._filled_at) * self.tpm / 60.0)
        self._filled_at = now

    async def acquire(self, tokens: int = 0) -> None:
        """Wait for a request slot (and, with a TPM limit, for `tokens` estimated tokens)."""
        async with self._lock:  # FIFO: waiters are served in arrival order
            while True:
                now = self.clock()
                self._refill(now)
                wait = max(self._not_before - now, self._next_slot - now if self._interval else 0.0)
                if self.tpm and tokens:
                    need = min(tokens, self._capacity)
                    if self._tokens < need:
                        wait = max(wait, (need - self._tokens) * 60.0 / self.tpm)
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            if self._interval:
                self._next_slot = max(now, self._next_slot) + self._interval
            if self.tpm:
                self._tokens -= tokens

    def settle(self, estimated: int, actual: int) -> None:
        """Correct the TPM bucket once the real token count of a request is known."""
        if self.tpm:
            self._refill(self.clock())
            self._tokens = min(self._capacity, self._tokens + estimated - actual)

    def pause(self, seconds: float) -> None:
        """Hold back every request for `seconds` (a server asked for it)."""
        self._not_before = max(self._not_before, self.clock() + seconds)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with "equal" jitter (half fixed, half random: spread out, yet the total
    wait of all retries is at least half the nominal one, enough to ride out a server restart),
    never shorter than the server's Retry-After."""

    retries: int = 6
    base: float = 1.0
    cap: float = 30.0
    max_retry_after: float = 300.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        nominal = min(self.cap, self.base * 2 ** attempt)
        backoff = nominal / 2 + rng.uniform(0, nominal / 2)
        if retry_after is not None and retry_after > 0:
            return max(min(retry_after, self.max_retry_after), backoff)
        return backoff


async def with_retries(attempt: Callable[[], Awaitable[T]], policy: RetryPolicy, limiter: RateLimiter,
                       tokens: int, rng: random.Random,
                       on_retry: Callable[[Transient, float], None] | None = None) -> T:
    """Run `attempt` (one HTTP request) through the limiter, retrying transient failures.

    Raises RetriesExhausted after `policy.retries` retries, and passes Permanent errors through."""
    for number in range(policy.retries + 1):
        await limiter.acquire(tokens)
        try:
            return await attempt()
        except Transient as error:
            if number == policy.retries:
                raise RetriesExhausted(error, number + 1) from None
            wait = policy.delay(number, error.retry_after, rng)
            if error.retry_after:
                limiter.pause(wait)  # a 429's Retry-After applies to every worker, not just this one
            if on_retry:
                on_retry(error, wait)
            await asyncio.sleep(wait)
    raise AssertionError("unreachable")
