"""What a backend is asked and what it answers: a `ChatRequest` (the messages, the sampling, an optional
JSON schema for the reply) and a `Reply` (the text, why it ended, the tokens counted, as a cache entry
stores it). Both backends take and give these: the OpenAI-compatible server (backends.py) and the local
transformers model (local.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ChatRequest", "Reply"]


@dataclass(frozen=True, slots=True)
class ChatRequest:
    messages: list[dict[str, str]]
    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    schema: dict[str, Any] | None = None
    schema_name: str = "reply"

    def sampling(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens, "temperature": self.temperature, "top_p": self.top_p,
                "seed": self.seed}


@dataclass(slots=True)
class Reply:
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    request_id: str | None
    response_format: str

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "finish_reason": self.finish_reason, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "request_id": self.request_id,
                "response_format": self.response_format}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reply:
        return cls(**{k: data.get(k) for k in ("text", "finish_reason", "prompt_tokens", "completion_tokens",
                                               "request_id", "response_format")})
