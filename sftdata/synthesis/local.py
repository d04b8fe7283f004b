"""The local backend: a Hugging Face model directory or .gguf file, run in-process with transformers.

Requests that arrive together are generated in batches on one thread, so the asyncio workers of
the orchestrator stay responsive. transformers and torch are imported only when the model loads.
"""
from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BackendError
from .limits import Permanent
from .requests import ChatRequest, Reply


@dataclass(slots=True)
class _Job:
    request: ChatRequest
    future: Future


class LocalBackend:
    """A local Hugging Face model directory or .gguf file, generating in batches on one thread.

    Requests that arrive together (up to `batch_size`, same sampling parameters) are generated in
    one `model.generate` call with left padding. There is no constrained decoding here: replies are
    parsed tolerantly (response format `none`)."""

    kind = "local-transformers"

    def __init__(self, model_path: str, batch_size: int = 4, wait_ms: float = 20.0) -> None:
        self.model_path, self.batch_size, self.wait_ms = model_path, max(1, batch_size), wait_ms
        self.model = str(model_path)
        self._jobs: list[_Job] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._tokenizer: Any = None
        self._model: Any = None

    def describe(self) -> dict[str, Any]:
        return {"backend": self.kind, "model": self.model}

    async def start(self) -> None:
        await asyncio.to_thread(self._load)
        self._thread = threading.Thread(target=self._loop, name="sftdata-local-generate", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        path = Path(self.model_path)
        if not path.exists():
            raise BackendError("no such model file or directory", file=str(path),
                               hint="give a local model directory or .gguf file, or --base-url for a server")
        try:
            import torch
            from transformers import AutoModelForCausalLM

            from ..tokenize.load import load_tokenizer
        except ImportError:
            raise BackendError("the local backend needs transformers and torch",
                               hint="pip install 'sftdata[synth]'") from None
        try:
            self._tokenizer = load_tokenizer(path)
            if path.suffix.lower() == ".gguf":
                model = _gguf_model(path, AutoModelForCausalLM, torch)
            else:
                model = AutoModelForCausalLM.from_pretrained(str(path))
        except BackendError:
            raise
        except Exception as error:
            raise BackendError(f"cannot load the model: {type(error).__name__}: {error}", file=str(path)) from None
        self._model = model.eval()
        if self._tokenizer.pad_token is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token
        self._tokenizer.padding_side = "left"

    async def complete(self, request: ChatRequest, fmt: str) -> Reply:
        future: Future = Future()
        with self._cond:
            if self._closed:
                raise Permanent("backend_closed", "the local backend was closed")
            self._jobs.append(_Job(request, future))
            self._cond.notify()
        try:
            return await asyncio.wrap_future(future)
        except (BackendError, Permanent):
            raise
        except Exception as error:
            raise Permanent("generation_failed", f"{type(error).__name__}: {error}") from None

    def _take_batch(self) -> list[_Job] | None:
        with self._cond:
            while not self._jobs and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            deadline = time.monotonic() + self.wait_ms / 1000
            while len(self._jobs) < self.batch_size and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            first = self._jobs[0].request
            key = (first.max_tokens, first.temperature, first.top_p)
            batch = [j for j in self._jobs
                     if (j.request.max_tokens, j.request.temperature, j.request.top_p) == key][: self.batch_size]
            self._jobs = [j for j in self._jobs if j not in batch]
            return batch

    def _loop(self) -> None:
        while (batch := self._take_batch()) is not None:
            live = [job for job in batch if not job.future.cancelled()]
            if not live:
                continue
            try:
                replies = self._generate([job.request for job in live])
            except Exception as error:
                for job in live:
                    if not job.future.done():
                        job.future.set_exception(error)
                continue
            for job, reply in zip(live, replies):
                if not job.future.done():
                    job.future.set_result(reply)

    def _generate(self, requests: list[ChatRequest]) -> list[Reply]:
        import torch

        tok = self._tokenizer
        prompts = [tok.apply_chat_template(r.messages, tokenize=False, add_generation_prompt=True) for r in requests]
        encoded = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        first = requests[0]
        if first.seed is not None:
            torch.manual_seed(first.seed)
        sample = first.temperature > 0
        with torch.inference_mode():
            output = self._model.generate(
                **encoded, max_new_tokens=first.max_tokens, do_sample=sample,
                temperature=first.temperature if sample else None, top_p=first.top_p if sample else None,
                pad_token_id=tok.pad_token_id)
        width = encoded["input_ids"].shape[1]
        stops = {tok.eos_token_id, tok.pad_token_id} - {None}
        replies = []
        for row, mask in zip(output, encoded["attention_mask"]):
            generated = row[width:].tolist()
            length = next((i for i, t in enumerate(generated) if t in stops), None)
            finished = length is not None
            kept = generated[: length if finished else len(generated)]
            replies.append(Reply(text=tok.decode(kept, skip_special_tokens=True),
                                 finish_reason="stop" if finished else "length",
                                 prompt_tokens=int(mask.sum()), completion_tokens=len(kept), request_id=None,
                                 response_format="none"))
        return replies

    async def close(self) -> None:
        with self._cond:
            self._closed = True
            for job in self._jobs:
                job.future.cancel()
            self._jobs.clear()
            self._cond.notify_all()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 600)


def _gguf_model(path: Path, auto_model: Any, torch: Any) -> Any:
    """A .gguf model through the dequantized folder `train` makes and caches (sftdata.dequantize): one
    conversion for training, serving checks and synthesis (de-quantizing takes minutes on a small CPU)."""
    from ..dequantize import convert_gguf

    return auto_model.from_pretrained(str(convert_gguf(path)), dtype=torch.float32)
