"""Where `sftdata eval` gets its answers (and losses) from: a run's model in-process, a llama.cpp server
for a GGUF, or any OpenAI-compatible server.

- `InProcess`: the run's base with its adapter (or with the adapter switched off, for the base), greedy,
  in batches of prompts left-padded to one length; a sequence ends at the trained stop token. It also
  gives the loss: the summed cross-entropy of the trained tokens of each rendered record.
- `Served`: a llama.cpp server (`python -m llama_cpp.server`, the launcher `serve-check` uses) on a
  GGUF, or an OpenAI-compatible `base_url`; greedy (temperature 0, seed 0), `concurrency` requests in
  flight. A GGUF with a known training template gets the rendered prompt on /v1/completions; a server
  without one gets the prompt turns on /v1/chat/completions and applies its own chat template. No loss:
  servers do not score prompt tokens.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..items import Rendered, Segment
from ..trainers.infer import Tuned, generate_batch
from ..trainers.llamaservers import post_json

BATCH = 8


@dataclass(slots=True)
class Generated:
    text: str
    stopped: bool
    tokens: int
    seconds: float


@dataclass(slots=True)
class Prompted:
    """One eval prompt in every form a backend may want."""

    rendered: Rendered | None  # the whole record rendered with the run's template (in-process, loss)
    prompt_text: str | None  # the rendered prompt, for /v1/completions
    messages: list[dict[str, str]]  # the prompt turns, for /v1/chat/completions


class InProcess:
    def __init__(self, tuned: Tuned, *, adapter: bool, batch_size: int = BATCH) -> None:
        self.tuned, self.adapter, self.batch_size = tuned, adapter, batch_size
        self.name = "tuned" if adapter else "base"

    def _context(self) -> Any:
        import contextlib

        return contextlib.nullcontext() if self.adapter else self.tuned.model.disable_adapter()

    def answer(self, prompts: Sequence[Prompted], max_new_tokens: int,
               progress: Callable[[int], None] | None = None) -> list[Generated]:
        ids = [self._prompt_ids(p) for p in prompts]
        out: list[Generated] = []
        for start in range(0, len(ids), self.batch_size):
            chunk = ids[start:start + self.batch_size]
            began = time.perf_counter()
            with self._context():
                done = generate_batch(self.tuned, chunk, max_new_tokens)
            seconds = (time.perf_counter() - began) / max(len(chunk), 1)
            out += [Generated(text, stopped, count, seconds) for text, stopped, count in done]
            if progress:
                progress(len(chunk))
        return out

    def _prompt_ids(self, prompt: Prompted) -> list[int]:
        assert prompt.rendered is not None and prompt.prompt_text is not None
        segment = Rendered([Segment(prompt.prompt_text, False)], prompt.rendered.locator)
        return self.tuned.encoder.encode([segment])[0].input_ids

    def loss(self, rendered: Rendered) -> tuple[float, int]:
        tok = self.tuned.encoder.encode([rendered])[0]
        with self._context():
            return nll(self.tuned.model, tok.input_ids, tok.mask)


def nll(model: Any, ids: list[int], mask: list[int]) -> tuple[float, int]:
    """Summed negative log-likelihood of the masked tokens given everything before them, and their count."""
    import torch

    device = next(model.parameters()).device
    inputs = torch.tensor([ids], device=device)
    keep = torch.tensor(mask[1:], device=device, dtype=torch.bool)
    if not bool(keep.any()):
        return 0.0, 0
    with torch.no_grad():
        logits = model(input_ids=inputs, attention_mask=torch.ones_like(inputs)).logits[0, :-1].float()
    losses = torch.nn.functional.cross_entropy(logits[keep], inputs[0, 1:][keep], reduction="sum")
    return float(losses), int(keep.sum())


class Served:
    """Greedy answers from an OpenAI-compatible server (a llama.cpp server sftdata started, or any)."""

    def __init__(self, name: str, base_url: str, *, model: str | None = None, stop: str | None = None,
                 completion: bool = True, concurrency: int = 4, api_key: str | None = None, timeout: float = 600.0) -> None:
        self.name, self.base_url, self.model, self.stop = name, base_url.rstrip("/"), model, stop
        self.completion, self.concurrency, self.timeout = completion, concurrency, timeout
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def answer(self, prompts: Sequence[Prompted], max_new_tokens: int,
               progress: Callable[[int], None] | None = None) -> list[Generated]:
        def one(prompt: Prompted) -> Generated:
            began = time.perf_counter()
            text, reason, tokens = self._ask(prompt, max_new_tokens)
            if progress:
                progress(1)
            return Generated(text, reason == "stop", tokens, time.perf_counter() - began)

        with ThreadPoolExecutor(max(1, self.concurrency), thread_name_prefix=f"sftdata-eval-{self.name}") as pool:
            return list(pool.map(one, prompts))

    def _ask(self, prompt: Prompted, max_new_tokens: int) -> tuple[str, str | None, int]:
        body: dict[str, Any] = {"max_tokens": max_new_tokens, "temperature": 0.0, "seed": 0}
        if self.model:
            body["model"] = self.model
        if self.completion and prompt.prompt_text is not None:
            path, body["prompt"] = "/completions", prompt.prompt_text
        else:
            path, body["messages"] = "/chat/completions", prompt.messages
        if self.stop:
            body["stop"] = [self.stop]
        reply = post_json(self.base_url, path, body, headers=self.headers, timeout=self.timeout)
        choice = reply["choices"][0]
        text = choice["text"] if path == "/completions" else (choice["message"].get("content") or "")
        tokens = int((reply.get("usage") or {}).get("completion_tokens") or 0)
        return text, choice.get("finish_reason"), tokens
