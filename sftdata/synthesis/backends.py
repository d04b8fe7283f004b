"""Where replies come from: an OpenAI-compatible server (here), or a local transformers model
in-process (local.py).

Both take a `ChatRequest` and return a `Reply` (requests.py), or raise `Transient` (retry), `Permanent` (this
request failed) or `BackendError` (nothing will work: bad key, unknown model, unloadable weights).
One call is one HTTP attempt: retries, limits and response-format fallback live in the orchestrator,
so every attempt passes the rate limiter. `openai`, `transformers` and `torch` are imported only
when a backend is made.

The API key is read from the environment when the client is made and kept only inside it; it is
never part of a request key, a cache entry, a reply, or an error message (`redact`).
"""
from __future__ import annotations

import email.utils
import os
import re
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from ..errors import BackendError, option
from .limits import Permanent, Transient
from .local import LocalBackend
from .requests import ChatRequest, Reply

FORMATS = ("json_schema", "json_object", "none")


class FormatRefused(Permanent):
    """The server refused a response_format (400/422, or llama-cpp-python's 500 naming it): with
    `auto`, try the next one."""


class FormatChooser:
    """`auto` walks json_schema → json_object → none, moving on when a server refuses one; the
    first format that works is kept for the rest of the run."""

    def __init__(self, choice: str) -> None:
        if choice != "auto" and choice not in FORMATS:
            raise ValueError(f"unknown response format {choice!r}")
        self.chain = FORMATS if choice == "auto" else (choice,)
        self._start = 0

    def order(self) -> Sequence[str]:
        return self.chain[self._start:]

    def confirm(self, fmt: str) -> None:
        self._start = max(self._start, self.chain.index(fmt))

    @property
    def current(self) -> str:
        return self.chain[self._start]


def redact(text: str, secrets: Sequence[str]) -> str:
    """Remove secrets (and anything shaped like an API key) from text that may be shown or stored."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return re.sub(r"\b(sk|key|api)[-_][A-Za-z0-9_\-*]{6,}", r"\1-***", text)


def response_format_payload(fmt: str, request: ChatRequest) -> dict[str, Any] | None:
    if fmt == "none" or request.schema is None:
        return None
    if fmt == "json_schema":  # OpenAI, vLLM, llama.cpp's llama-server
        return {"type": "json_schema",
                "json_schema": {"name": request.schema_name, "schema": strict_subset(request.schema), "strict": True}}
    return {"type": "json_object", "schema": request.schema}  # llama-cpp-python's server, Ollama-style


_NOT_STRICT = ("minLength", "maxLength")  # keywords OpenAI's strict mode does not accept


def strict_subset(schema: Any) -> Any:
    """The schema without keywords that OpenAI's strict structured outputs refuse."""
    if isinstance(schema, dict):
        return {k: strict_subset(v) for k, v in schema.items() if k not in _NOT_STRICT}
    if isinstance(schema, list):
        return [strict_subset(v) for v in schema]
    return schema


def _retry_after(headers: Any) -> float | None:
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            parsed = email.utils.parsedate_tz(value)
            if parsed is not None:
                return max(0.0, email.utils.mktime_tz(parsed) - time.time())
    return None


class OpenAIBackend:
    """Any OpenAI-compatible chat completions server, through `openai.AsyncOpenAI` with its own
    retries switched off (they would bypass the limiter and the accounting)."""

    kind = "openai-compatible"

    def __init__(self, base_url: str, model: str | None, api_key_env: str = "OPENAI_API_KEY",
                 timeout: float = 120.0) -> None:
        try:
            import openai
        except ImportError:
            raise BackendError("the OpenAI-compatible backend needs the openai package",
                               hint="pip install 'sftdata[synth]'") from None
        self._openai = openai
        self.base_url, self.model, self.api_key_env, self.timeout = base_url, model, api_key_env, timeout
        key = os.environ.get(api_key_env) or ""
        self._secrets = (key,) if key else ()
        # Servers such as llama.cpp and vLLM accept any key; the client insists on a non-empty one.
        self._client = openai.AsyncOpenAI(api_key=key or "no-key", base_url=base_url, max_retries=0,
                                          timeout=timeout)

    def describe(self) -> dict[str, Any]:
        parts = urlsplit(self.base_url)
        shown = parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")).geturl() \
            if parts.hostname else self.base_url  # never user:password@ from the URL
        return {"backend": self.kind, "base_url": redact(shown, self._secrets), "model": self.model,
                "api_key_env": self.api_key_env}

    def _scrub(self, text: str) -> str:
        return redact(text, self._secrets)

    async def start(self) -> None:
        if self.model:
            return
        try:
            models = await self._client.models.list()
        except Exception as error:
            raise BackendError(f"cannot list the server's models: {self._scrub(str(error))}",
                               hint="pass --model, and check --base-url") from None
        ids = [m.id for m in models.data]
        if not ids:
            raise BackendError("the server lists no models", hint=f"pass {option('model')}")
        self.model = ids[0]

    async def complete(self, request: ChatRequest, fmt: str) -> Reply:
        openai = self._openai
        kwargs: dict[str, Any] = {"model": self.model, "messages": request.messages,
                                  "max_tokens": request.max_tokens, "temperature": request.temperature,
                                  "top_p": request.top_p}
        if request.seed is not None:
            kwargs["seed"] = request.seed
        payload = response_format_payload(fmt, request)
        if payload is not None:
            kwargs["response_format"] = payload
        try:
            completion = await self._client.chat.completions.create(**kwargs)
        except openai.APITimeoutError:
            raise Transient("timeout", f"no reply within {self.timeout:g} s") from None
        except openai.APIConnectionError as error:
            cause = self._scrub(str(error.__cause__ or error))
            raise Transient("connection_error", f"connection error: {cause}") from None
        except openai.APIStatusError as error:
            raise self._status_error(error, fmt) from None
        except openai.APIError as error:
            raise Permanent("bad_response", self._scrub(str(error))) from None
        if not completion.choices:
            raise Permanent("empty_reply", "the server returned no choices")
        choice = completion.choices[0]
        text = choice.message.content or getattr(choice.message, "refusal", None) or ""
        usage = completion.usage
        return Reply(text=text, finish_reason=choice.finish_reason,
                     prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                     completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
                     request_id=getattr(completion, "_request_id", None) or completion.id,
                     response_format=fmt if payload is not None else "none")

    def _status_error(self, error: Any, fmt: str) -> Exception:
        status = error.status_code
        message = self._scrub(f"HTTP {status}: {error.message}")
        headers = getattr(error.response, "headers", None)
        if status in (401, 403):
            return BackendError(f"the server refused the credentials ({message})",
                                hint=f"set the API key in ${self.api_key_env} (or name another variable "
                                     "with --api-key-env)")
        if status == 404:
            return BackendError(f"not found ({message})", hint=f"check {option('base_url')} and {option('model')}")
        if status == 429 and getattr(error, "code", None) == "insufficient_quota":
            return BackendError(f"the account has no quota left ({message})")
        if fmt != "none" and status >= 500 and "response_format" in str(error.message):
            # llama-cpp-python's server validates response_format.type against text/json_object and
            # reports the validation error as HTTP 500; it is a refusal, not a server fault.
            return FormatRefused("response_format_refused", message)
        if status in (408, 409, 429) or status >= 500:
            reason = "rate_limited" if status == 429 else "timeout" if status == 408 else f"http_{status}"
            return Transient(reason, message, _retry_after(headers))
        if status in (400, 422) and fmt != "none":
            return FormatRefused("response_format_refused", message)
        return Permanent(f"http_{status}", message)

    async def close(self) -> None:
        await self._client.close()


def make_backend(base_url: str | None, model: str | None, api_key_env: str, timeout: float,
                 batch_size: int) -> Any:
    """The OpenAI-compatible backend for a --base-url, else the local one for --model PATH."""
    if base_url:
        return OpenAIBackend(base_url, model, api_key_env, timeout)
    if not model:
        raise BackendError(f"no backend: give {option('base_url', 'URL')} for a server, or {option('model', 'PATH')} "
                           "for a local model directory or .gguf file")
    return LocalBackend(model, batch_size=batch_size)
