"""`sftdata serve-check`: serve an export with llama.cpp and ask it, the way a user's server would.

The server is llama-cpp-python's (``python -m llama_cpp.server``, which embeds llama.cpp), started on
127.0.0.1 on a free port: a merged GGUF alone, or the base GGUF with a LoRA GGUF (``--lora_path``).
A training run directory is first exported as a LoRA GGUF into a temporary folder (which needs the
converters, as export-gguf does). Prompts go through the OpenAI-compatible API:

* ``completion`` (the default when the training template is known, from the run or the export's
  ``.sftdata.json``): the prompt rendered by the training Renderer itself, sent to /v1/completions
  with the stop token as a stop string;
* ``chat``: /v1/chat/completions, so the server formats the prompt with the GGUF's own
  ``tokenizer.chat_template``; for a merged export that is the training template (export-gguf wrote it).

Each answer is reported with whether it ended at the stop token (finish_reason "stop", not "length")
and whether it contains the expected text; with ``compare_base`` the base model answers too.

Template parity (sftdata.trainers.parity): when the run is known and the served GGUF carries a chat
template, held-out conversations are rendered by the server's chat template path and compared byte for
byte with the text training used. For a merged export (whose template is the training one) a mismatch
fails the check; for a LoRA on a base GGUF, whose chat template is the base's own, it is reported only.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import OptionError, TrainError, option
from .basegguf import QUANT_ADVICE, quantized_type, sixteen_bit_base, trained_base_differs
from .config import BaseWeights
from .converter import read_metadata
from .gguf import export_gguf, sidecar_path
from .llamaservers import LlamaCppServer, LlamaServer, check_server_installed, post_json
from .parity import TemplateParity, check_parity, check_rendered, held_out
from .prompt_format import PromptFormat, load_prompt_format

ENDPOINTS = ("auto", "completion", "chat")
LLAMA_SERVER_ENV = "SFTDATA_LLAMA_SERVER"  # llama.cpp's llama-server executable, for its /apply-template

@dataclass(slots=True)
class Answer:
    prompt: str
    text: str
    finish_reason: str | None
    stopped: bool  # ended at the stop token, not at max_tokens
    contains_expect: bool | None  # None without --expect
    rendered_prompt: str | None = None  # what /v1/completions was sent (None on the chat endpoint)
    base_text: str | None = None
    base_stopped: bool | None = None


@dataclass(slots=True)
class ServeCheck:
    model: str
    lora: str | None
    endpoint: str
    template: str | None
    stop: str | None
    answers: list[Answer] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # which base was served and why; what a failure means
    parity: TemplateParity | None = None  # llama-cpp-python's chat template path against training's text
    llama_server_parity: TemplateParity | None = None  # llama.cpp's own llama-server --jinja, when asked for

    @property
    def answers_ok(self) -> bool:
        return all(a.stopped and a.contains_expect is not False for a in self.answers)

    @property
    def parity_required(self) -> bool:
        return self.parity is not None and self.parity.required

    @property
    def ok(self) -> bool:
        checked = [p for p in (self.parity, self.llama_server_parity) if p is not None]
        return self.answers_ok and all(p.ok or not p.required for p in checked)

    def as_dict(self) -> dict[str, Any]:
        return {"command": "serve-check", "ok": self.ok, "model": self.model, "lora": self.lora,
                "endpoint": self.endpoint, "template": self.template, "stop": self.stop,
                "answers": [asdict(a) for a in self.answers], "notes": list(self.notes),
                "parity": self.parity.as_dict() if self.parity else None, "parity_required": self.parity_required,
                "llama_server_parity": self.llama_server_parity.as_dict() if self.llama_server_parity else None}


@dataclass(slots=True)
class _Target:
    model: Path
    lora: Path | None
    base: Path | None  # what compare_base serves: the model without the adapter / the run's base
    fmt: PromptFormat | None
    info: dict[str, Any] | None = None  # the run's record, when the adapter's run is known
    note: str | None = None
    chat_template_file: Path | None = None  # the training template written beside a LoRA export


def serve_check(target: str | os.PathLike[str], prompts: list[str], *, expect: str | None = None,
                base: str | os.PathLike[str] | None = None, endpoint: str = "auto", max_tokens: int = 128,
                compare_base: bool = False, llama_cpp: str | os.PathLike[str] | None = None,
                threads: int | None = None, n_ctx: int = 2048, base_weights: BaseWeights = "trained",
                llama_server: str | os.PathLike[str] | None = None) -> ServeCheck:
    """Serve a run (as base + LoRA GGUF) or an exported GGUF with llama.cpp and ask it the prompts. A run
    directory from a GGUF base is served on the base weights `base_weights` names, unless `base` is given."""
    if endpoint not in ENDPOINTS:
        raise OptionError("is unknown", option="endpoint", value=endpoint, hint=f"use one of {', '.join(ENDPOINTS)}")
    if not prompts:
        raise OptionError("give at least one", option="prompt")
    check_server_installed()
    with tempfile.TemporaryDirectory(prefix="sftdata-serve-check-") as scratch:
        work = Path(scratch)
        resolved = _resolve(Path(target), Path(base) if base else None, llama_cpp, work, base_weights)
        if compare_base and resolved.base is None:
            raise TrainError("no base model to compare with: the base of this export is not known as a GGUF file",
                             hint=f"pass {option('base', 'BASE.gguf')}")
        if endpoint == "auto":
            endpoint = "completion" if resolved.fmt is not None else "chat"
        if endpoint == "completion" and resolved.fmt is None:
            raise TrainError("no training template is known for this GGUF (no .sftdata.json beside it), so prompts "
                             "cannot be rendered for /v1/completions", file=str(target),
                             hint="use --endpoint chat (the GGUF's own chat template)")
        fmt = resolved.fmt
        rendered = [fmt.prompt(p) if fmt is not None and endpoint == "completion" else None for p in prompts]
        stop = fmt.eos if fmt is not None else None
        result = ServeCheck(str(resolved.model), str(resolved.lora) if resolved.lora else None, endpoint,
                            fmt.name if fmt else None, stop, notes=[resolved.note] if resolved.note else [])
        with LlamaServer(resolved.model, work / "server.log", lora=resolved.lora, threads=threads,
                         n_ctx=n_ctx) as server:
            for prompt, text in zip(prompts, rendered):
                answer, reason = _ask(server, endpoint, prompt, text, stop, max_tokens)
                result.answers.append(Answer(prompt, answer, reason, reason == "stop",
                                             None if expect is None else expect in answer, text))
            _check_parity(result, resolved, server)
        llama_server = llama_server or os.environ.get(LLAMA_SERVER_ENV) or None
        if llama_server is not None:
            _check_llama_server(result, resolved, Path(llama_server), work, threads, n_ctx)
        if not result.answers_ok and resolved.lora is not None and resolved.info is not None:
            _explain_quantized(result, resolved, rendered, work, expect, endpoint, max_tokens, llama_cpp, threads, n_ctx)
        if compare_base:
            with LlamaServer(resolved.base, work / "base.log", threads=threads, n_ctx=n_ctx) as base_server:
                for answer, text in zip(result.answers, rendered):
                    answer.base_text, reason = _ask(base_server, endpoint, answer.prompt, text, stop, max_tokens)
                    answer.base_stopped = reason == "stop"
    return result


def _resolve(target: Path, base: Path | None, llama_cpp: Any, work: Path, weights: BaseWeights = "trained") -> _Target:
    from .outputs import INFO, read_info, require_done

    if target.is_dir():
        if not (target / INFO).is_file():
            raise TrainError(f"neither a training output directory (no {INFO}) nor a .gguf file", file=str(target))
        info = read_info(target)
        require_done(target, info)
        run_base = Path(info["base_model"]["spec"]) if info["base_model"]["kind"] == "gguf" else None
        model, note = base or run_base, None
        if model is None:
            raise TrainError("the run's base model is not a GGUF file, so llama.cpp has nothing to apply the "
                             "adapter to", file=str(target), hint=f"pass {option('base', 'BASE.gguf')} (the base model as GGUF)")
        _need_file(model)
        if base is None and trained_base_differs(info, weights):  # serve what the adapter trained against
            model = sixteen_bit_base(info, llama_cpp, weights)
            what = "the 4-bit round trip of the run's base" if weights == "trained" else "the run's dequantized base"
            note = (f"served on a 16-bit GGUF of {what} ({model}), the weights the adapter trained against; "
                    f"check on {run_base.name} itself with --base {run_base}")
        export = export_gguf(target, work / "adapter.gguf", llama_cpp=llama_cpp)
        side = work / "adapter.chat_template.jinja"
        return _Target(model, export.path, model, load_prompt_format(target, info), info, note,
                       side if side.is_file() else None)
    _need_file(target)
    meta = read_metadata(target, ("general.type",))
    sidecar = _read_sidecar(target)
    fmt = None
    if sidecar is not None:
        run = Path(sidecar["run"])
        if not run.is_dir():
            raise TrainError(f"the run this GGUF was exported from ({run}) is gone, so its template is unknown",
                             file=str(sidecar_path(target)), hint="use --endpoint chat (the GGUF's own template)")
        fmt = load_prompt_format(run)
    if meta.get("general.type") == "adapter":
        model = base or (Path(sidecar["base_gguf"]) if sidecar and sidecar.get("base_gguf") else None)
        if model is None:
            raise TrainError("a LoRA GGUF needs its base model", file=str(target), hint=f"pass {option('base', 'BASE.gguf')}")
        _need_file(model)
        side = sidecar.get("chat_template_file") if sidecar else None
        return _Target(model, target, model, fmt, _run_info(sidecar), None,
                       Path(side) if side and Path(side).is_file() else None)
    run_base = sidecar.get("merged_base_gguf") if sidecar else None
    return _Target(target, None, base or (Path(run_base) if run_base else None), fmt, _run_info(sidecar))


def _check_parity(result: ServeCheck, resolved: _Target, server: LlamaServer) -> None:
    """Held-out conversations through the server's chat template path, against training's text."""
    if resolved.fmt is None or resolved.info is None:
        return
    if not read_metadata(resolved.model, ("tokenizer.chat_template",)).get("tokenizer.chat_template"):
        result.notes.append(f"{resolved.model.name} carries no chat template: its chat endpoint was not compared "
                            "with training")
        return
    conversations = held_out(resolved.fmt, resolved.info)
    if not conversations:
        result.notes.append("no held-out conversation with a chat form was found in the run's data: the chat "
                            "template path was not compared with training")
        return

    def served_tokens(messages: list[dict[str, Any]]) -> int:
        body = {"messages": messages, "max_tokens": 1, "temperature": 0.0}
        return int(post_json(server.base_url, "/chat/completions", body)["usage"]["prompt_tokens"])

    result.parity = check_parity(resolved.model, conversations, served_tokens)
    result.parity.required = resolved.lora is None  # a LoRA on a base GGUF: the base's own template
    if not result.parity.ok and resolved.lora is not None:
        result.notes.append(f"the chat endpoint formats with {resolved.model.name}'s own chat template, not the "
                            "training one: send prompts rendered with the training template to /v1/completions, or "
                            "give llama-server the exported one (--jinja --chat-template-file), or serve the merged "
                            "export")


def _check_llama_server(result: ServeCheck, resolved: _Target, binary: Path, work: Path, threads: int | None,
                        n_ctx: int) -> None:
    """The same held-out conversations through llama.cpp's own llama-server --jinja (/apply-template): the
    GGUF's own template, or for a LoRA the training template written beside it (--chat-template-file)."""
    if not binary.is_file():
        raise TrainError("no such llama-server executable", file=str(binary))
    if resolved.fmt is None or resolved.info is None:
        raise TrainError("the run this GGUF was exported from is not known, so there is no training text to compare "
                         "llama-server's template with", file=str(resolved.model))
    conversations = held_out(resolved.fmt, resolved.info)
    if not conversations:
        result.notes.append("no held-out conversation with a chat form: llama-server's template was not compared")
        return
    with LlamaCppServer(binary, resolved.model, work / "llama-server.log", lora=resolved.lora,
                        chat_template_file=resolved.chat_template_file, threads=threads, n_ctx=n_ctx) as server:
        what = "the training template beside the LoRA" if resolved.chat_template_file else "the GGUF's chat template"
        result.llama_server_parity = check_rendered(f"llama.cpp llama-server --jinja /apply-template ({what})",
                                                    conversations, server.apply_template)
    result.llama_server_parity.required = resolved.lora is None or resolved.chat_template_file is not None


def _run_info(sidecar: dict[str, Any] | None) -> dict[str, Any] | None:
    from .outputs import read_info

    try:
        return read_info(Path(sidecar["run"])) if sidecar else None
    except (TrainError, OSError, KeyError):
        return None


def _explain_quantized(result: ServeCheck, resolved: _Target, rendered: list[str | None], work: Path,
                       expect: str | None, endpoint: str, max_tokens: int, llama_cpp: Any, threads: int | None,
                       n_ctx: int) -> None:
    """A failed check on a quantized base: ask the 16-bit weights the adapter trained on too, and when they
    pass, say so in one line with the ways out."""
    quantized = quantized_type(resolved.model)
    if not quantized or resolved.info is None or resolved.info["base_model"]["kind"] != "gguf":
        return
    sixteen = sixteen_bit_base(resolved.info, llama_cpp, "trained")
    with LlamaServer(sixteen, work / "f16.log", lora=resolved.lora, threads=threads, n_ctx=n_ctx) as server:
        for answer, text in zip(result.answers, rendered):
            reply, reason = _ask(server, endpoint, answer.prompt, text, result.stop, max_tokens)
            if reason != "stop" or (expect is not None and expect not in reply):
                return
    result.notes.append(f"the answers fail on the quantized base {resolved.model.name} ({quantized}) but pass on "
                        f"the 16-bit weights the adapter trained against ({sixteen.name}): " + QUANT_ADVICE)


def _read_sidecar(gguf: Path) -> dict[str, Any] | None:
    path = sidecar_path(gguf)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise TrainError(f"unreadable export record: {error}", file=str(path)) from None
    if not isinstance(data, dict) or data.get("sftdata_export") != 1 or "run" not in data:
        raise TrainError("not an sftdata export record", file=str(path))
    return data


def _need_file(path: Path) -> None:
    if not path.is_file():
        raise TrainError("no such GGUF file", file=str(path))


def _ask(server: LlamaServer, endpoint: str, prompt: str, rendered: str | None, stop: str | None,
         max_tokens: int) -> tuple[str, str | None]:
    """One greedy answer and its finish_reason, through the OpenAI-compatible API."""
    body: dict[str, Any] = {"max_tokens": max_tokens, "temperature": 0.0, "seed": 0}
    if endpoint == "completion":
        path, body["prompt"] = "/completions", rendered
    else:
        path, body["messages"] = "/chat/completions", [{"role": "user", "content": prompt}]
    if stop:
        body["stop"] = [stop]
    reply = post_json(server.base_url, path, body, note=f"log: {server.log_tail()}")
    choice = reply["choices"][0]
    text = choice["text"] if endpoint == "completion" else (choice["message"].get("content") or "")
    return text, choice.get("finish_reason")
