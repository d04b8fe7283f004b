"""`sftdata export-gguf`: a finished run → GGUF, with llama.cpp's own converters.

Two exports:

* merged (``merge=True``): the adapter folded into the base it trained against (`infer.merge`: by default
  the 4-bit round trip of the base, sftdata.trainers.roundtrip), converted whole
  by ``convert_hf_to_gguf.py``. Before converting, the merged folder's tokenizer_config.json is given
  the training template as ``chat_template`` and the trained stop token as ``eos_token``, so the GGUF
  carries them as ``tokenizer.chat_template`` and ``tokenizer.ggml.eos_token_id``; both are read back
  from the written file and checked.
* LoRA (default): the adapter alone, by ``convert_lora_to_gguf.py --base <the run's base HF folder>``;
  llama.cpp applies it on top of the base model's GGUF (``--lora``). The base it recommends (and
  `serve-check` serves it on) is the one it trained against: for a QLoRA run from a GGUF, a 16-bit GGUF
  of the 4-bit round trip of that base (sftdata.trainers.basegguf, cached), not the file itself.

The converters are never copied here: they are run from a llama.cpp source tree (``--llama-cpp DIR``
or ``LLAMA_CPP_DIR``; the llama-cpp-python sdist carries one under ``vendor/llama.cpp``), as a
subprocess importing that tree's own ``gguf-py``, so converter and gguf package always match
(sftdata.trainers.converter finds the tree, runs the scripts and reads the written GGUF's metadata).
The converter writes into a staging folder beside OUT.gguf, renamed into place when checked. Beside
the GGUF go ``OUT.sftdata.json`` (what `serve-check` needs: run, template, stop token, base GGUF) and,
for block templates (Alpaca, Q&A), an Ollama ``OUT.Modelfile``.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BackendError, OptionError, OutputError, TrainError, option
from ..writers import AtomicFile, write_json
from .basegguf import QUANT_ADVICE, quantized_type, sixteen_bit_base, trained_base_differs
from .config import BaseWeights
from .converter import LlamaCpp, find_llama_cpp, read_metadata, run_converter
from .prompt_format import PromptFormat, load_prompt_format, modelfile

OUTTYPES = ("f16", "bf16", "q8_0")


@dataclass(slots=True)
class GgufExport:
    """What export_gguf wrote and how to serve it."""

    path: Path
    kind: str  # "merged" or "lora"
    outtype: str
    bytes: int
    run: Path
    template: str
    eos: str
    eos_id: int | None
    chat_template: bool  # the GGUF (merged) or the side file (LoRA) carries the training template
    base_gguf: str | None  # the model a LoRA applies to: the base it trained against, as a GGUF (see base_weights)
    modelfile: Path | None
    sidecar: Path
    llama_cpp: str
    gguf_py_version: str
    notes: list[str] = field(default_factory=list)
    base_weights: BaseWeights = "trained"
    run_base_gguf: str | None = None  # the run's own base .gguf file

    def serve_commands(self) -> list[str]:
        """Commands that serve this export with llama-cpp-python's server and with llama.cpp's own."""
        if self.kind == "merged":
            return [f"python -m llama_cpp.server --model {self.path}", f"llama-server -m {self.path} --jinja"]
        base = self.base_gguf or "BASE.gguf"
        return [f"python -m llama_cpp.server --model {base} --lora_path {self.path}",
                f"llama-server -m {base} --lora {self.path}"]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("path", "run", "modelfile", "sidecar"):
            data[key] = str(data[key]) if data[key] is not None else None
        return {**data, "serve_commands": self.serve_commands()}


def sidecar_path(gguf: Path) -> Path:
    return gguf.with_name(gguf.stem + ".sftdata.json")


def export_gguf(run_dir: str | os.PathLike[str], output: str | os.PathLike[str], *, merge: bool = False,
                outtype: str = "f16", llama_cpp: str | os.PathLike[str] | None = None,
                overwrite: bool = False, base_weights: BaseWeights = "trained") -> GgufExport:
    """Convert a finished run to OUT.gguf (merged model, or the LoRA adapter alone), on the base weights
    `base_weights` names (the 4-bit round trip the adapter trained against by default)."""
    from .infer import _source
    from .outputs import read_info, require_done

    run, out = Path(run_dir), Path(output).absolute()  # the converters run in their own folder
    info = read_info(run)
    require_done(run, info)
    if outtype not in OUTTYPES:
        raise OptionError("is unknown", option="outtype", value=outtype, hint=f"use one of {', '.join(OUTTYPES)}")
    if out.suffix.lower() != ".gguf":
        raise OutputError("the output file must end in .gguf", file=str(out))
    if out.exists() and not overwrite:
        raise OutputError("the output file exists", file=str(out), hint=f"pass {option('overwrite', True)} or pick another name")
    tree = find_llama_cpp(llama_cpp)
    fmt = load_prompt_format(run, info)
    base = info["base_model"]
    source = _source(info)
    if not merge and source.kind == "hub" and not Path(source.path).is_dir():
        raise TrainError("the LoRA converter needs the base model's config.json in a local folder; this run's base "
                         f"is the hub id {source.spec!r}", hint="export with --merge, or train from a local folder")
    run_base_gguf = str(Path(base["spec"]).resolve()) if base["kind"] == "gguf" else None
    notes: list[str] = []
    chat_template = fmt.chat_template()
    if chat_template is None:
        notes.append(f"the template {fmt.name!r} cannot be written as a chat template that servers render the same "
                     "way; prompts must be rendered with it (sftdata serve-check does) and sent to /v1/completions")
    if fmt.eos_id is None:
        notes.append(f"the stop token {fmt.eos!r} is not one token: pass it as a stop string")
    base_gguf = run_base_gguf
    if not merge and run_base_gguf is not None and trained_base_differs(info, base_weights):
        base_gguf = str(sixteen_bit_base(info, tree.root, base_weights))
        what = "the 4-bit round trip" if base_weights == "trained" else "the dequantized weights"
        notes.append(f"the base to serve this adapter on is {base_gguf}: a 16-bit GGUF of {what} of "
                     f"{Path(run_base_gguf).name}, which the adapter trained against")
        quantized = quantized_type(Path(run_base_gguf))
        if quantized:
            notes.append(f"on {Path(run_base_gguf).name} itself ({quantized}) a small adapter may not answer as "
                         "trained: " + QUANT_ADVICE)
    if fmt.renderer.template.args and chat_template is not None:
        notes.append(f"trained with template arguments {fmt.renderer.template.args}: set at the top of the exported "
                     "chat template, so a server's chat endpoint renders with them unasked")

    out.parent.mkdir(parents=True, exist_ok=True)
    _clear_staging(out)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        written = staging / out.name
        if merge:
            _convert_merged(run, staging, written, fmt, chat_template, outtype, tree, base_weights)
        else:
            args = [str(tree.script("convert_lora_to_gguf.py")), "--base", source.path, "--outtype", outtype,
                    "--outfile", str(written), str(run.resolve())]
            run_converter(tree, args, "convert_lora_to_gguf.py")
        _check_written(written, "merged" if merge else "lora", chat_template, fmt)
        os.replace(written, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    for stale in (".chat_template.jinja", ".Modelfile"):  # of an export this one replaces
        out.with_name(out.stem + stale).unlink(missing_ok=True)
    template_file = None
    if not merge and chat_template is not None:  # the base GGUF keeps its own template: ship ours beside
        template_file = out.with_name(out.stem + ".chat_template.jinja")
        with AtomicFile(template_file) as handle:
            handle.write(chat_template.encode("utf-8"))
        notes.append(f"servers apply the base GGUF's own chat template unless told otherwise: "
                     f"llama-server --jinja --chat-template-file {template_file}")
    text = modelfile(out.name, fmt, None if merge else (base_gguf or "BASE.gguf"))
    mf = out.with_name(out.stem + ".Modelfile") if text is not None else None
    if mf is not None:
        with AtomicFile(mf) as handle:
            handle.write(text.encode("utf-8"))
    result = GgufExport(out, "merged" if merge else "lora", outtype, out.stat().st_size, run.resolve(), fmt.name,
                        fmt.eos, fmt.eos_id, chat_template is not None, None if merge else base_gguf, mf,
                        sidecar_path(out), str(tree.root), tree.gguf_version, notes, base_weights, run_base_gguf)
    write_json(result.sidecar, {"sftdata_export": 1, **result.as_dict(), "gguf": out.name,
                                "template_sha256": fmt.sha256, "template_args": dict(fmt.renderer.template.args),
                                "train_on": fmt.renderer.train_on, "merged_base_gguf": run_base_gguf if merge else None,
                                "chat_template_file": str(template_file) if template_file else None})
    return result


def _clear_staging(out: Path) -> None:
    """Staging folders of earlier exports to this OUT that were killed before cleaning up (a merged
    model each: GBs for an 8B one). Only this command makes names of this shape."""
    for stale in out.parent.glob(f".{glob.escape(out.name)}.tmp-*"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)


def _convert_merged(run: Path, staging: Path, written: Path, fmt: PromptFormat, chat_template: str | None,
                    outtype: str, tree: LlamaCpp, base_weights: BaseWeights) -> None:
    from .infer import merge as merge_run

    hf = merge_run(run, staging / "merged", base_weights=base_weights)
    config_path = hf / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if chat_template is not None:
        config["chat_template"] = chat_template  # read before chat_template.jinja by the converter
        (hf / "chat_template.jinja").unlink(missing_ok=True)
    else:
        config.pop("chat_template", None)
        (hf / "chat_template.jinja").unlink(missing_ok=True)  # not the training format: write none
    if fmt.eos_id is not None:
        config["eos_token"] = fmt.eos
    config_path.write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
    args = [str(tree.script("convert_hf_to_gguf.py")), str(hf), "--outtype", outtype, "--outfile", str(written)]
    run_converter(tree, args, "convert_hf_to_gguf.py")


def _check_written(path: Path, kind: str, chat_template: str | None, fmt: PromptFormat) -> None:
    """The converter's output carries what it must: a model with our template and stop token, or a LoRA."""
    keys = ("general.type", "adapter.type", "tokenizer.chat_template", "tokenizer.ggml.eos_token_id")
    meta = read_metadata(path, keys)
    if kind == "lora":
        if meta.get("general.type") != "adapter" or meta.get("adapter.type") != "lora":
            raise BackendError(f"the converter did not write a LoRA adapter GGUF (general.type "
                               f"{meta.get('general.type')!r}, adapter.type {meta.get('adapter.type')!r})")
        return
    if chat_template is not None and meta.get("tokenizer.chat_template") != chat_template:
        raise BackendError("the converted GGUF does not carry the training template as tokenizer.chat_template")
    if fmt.eos_id is not None and meta.get("tokenizer.ggml.eos_token_id") != fmt.eos_id:
        raise BackendError(f"the converted GGUF's EOS id is {meta.get('tokenizer.ggml.eos_token_id')}, not the "
                           f"trained stop token {fmt.eos!r} ({fmt.eos_id})")
