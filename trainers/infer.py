"""`sftdata generate` and `sftdata merge` over a training output directory.

generate renders the prompt with the exact template the run trained with (name + sha256 checked),
tokenizes it with the same Encoder as training, and stops at the trained EOS; with compare_base it
answers again with the adapter switched off, so base and tuned answers sit side by side. merge folds
the adapter into the base it trained against (by default the 4-bit round trip of the base, in 16 bits:
sftdata.trainers.roundtrip) and saves plain safetensors that load without peft.
"""
from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import templates as registry
from ..errors import TrainError, option
from ..items import Locator
from ..tokenize.load import load_tokenizer
from .config import BaseWeights, TrainConfig
from .models import ModelSource, load_model, quantization, resolve_model, torch_dtype
from .outputs import INFO, read_info, require_done


@dataclass(slots=True)
class Generation:
    prompt: str
    rendered_prompt: str
    tuned: str
    tuned_stopped: bool  # ended with the trained EOS (not cut at max_new_tokens)
    base: str | None = None
    base_stopped: bool | None = None


@dataclass(slots=True)
class Tuned:
    """A trained run loaded for inference: PeftModel, tokenizer, prompt renderer, stop ids."""

    model: Any
    tokenizer: Any
    renderer: Any
    encoder: Any
    stop_ids: list[int]
    info: dict[str, Any]


def load_tuned(out_dir: str | os.PathLike[str]) -> Tuned:
    from peft import PeftModel

    from ..curate.samples import encoder_for

    out = Path(out_dir)
    info = read_info(out)
    require_done(out, info)
    config = TrainConfig.model_validate(info["config"])
    tokenizer = load_tokenizer(out)
    renderer, plan = _renderer(out, info, tokenizer)
    precision = _precision(info)
    base = load_model(_source(info), precision=precision, device_map=_device_map(),
                      quantization_config=quantization(config, precision),
                      trust_remote_code=config.trust_remote_code)
    model = PeftModel.from_pretrained(base, str(out))
    model.eval()
    stop_ids = _stop_ids(tokenizer, info)
    return Tuned(model, tokenizer, renderer, encoder_for(plan), stop_ids, info)


@dataclass(frozen=True, slots=True)
class Generated:
    """Progress of `generate`: one answer done (which model, how many tokens, how fast)."""

    done: int
    total: int
    model: str  # "tuned" or "base"
    tokens: int
    seconds: float

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def generate(out_dir: str | os.PathLike[str] | Tuned, prompts: list[str], *, max_new_tokens: int = 128,
             compare_base: bool = False, progress: Callable[[Generated], None] | None = None) -> list[Generation]:
    """Greedy answers of the tuned model (and of the base, with compare_base) to each prompt."""
    tuned = out_dir if isinstance(out_dir, Tuned) else load_tuned(out_dir)
    results = []
    for index, prompt in enumerate(prompts, 1):
        text, ids = render_prompt(tuned, prompt)
        answer, stopped = _timed(tuned, ids, max_new_tokens, progress, index, len(prompts), "tuned")
        result = Generation(prompt, text, answer, stopped)
        if compare_base:
            with tuned.model.disable_adapter():
                result.base, result.base_stopped = _timed(tuned, ids, max_new_tokens, progress, index, len(prompts),
                                                          "base")
        results.append(result)
    return results


def _timed(tuned: Tuned, ids: list[int], max_new_tokens: int, progress: Callable[[Generated], None] | None,
           index: int, total: int, which: str) -> tuple[str, bool]:
    started = time.perf_counter()
    [(answer, stopped, count)] = generate_batch(tuned, [ids], max_new_tokens)
    if progress is not None:
        progress(Generated(index, total, which, count, time.perf_counter() - started))
    return answer, stopped


def render_prompt(tuned: Tuned, prompt: str) -> tuple[str, list[int]]:
    """The prompt part of the training template for a one-turn instruction, and its token ids."""
    from ..items import Rendered, Segment
    from ..schemas.records import InstructionRecord

    locator = Locator("<prompt>")
    rendered = tuned.renderer.render(InstructionRecord(instruction=prompt, output="…"), locator)
    if not isinstance(rendered, Rendered):
        raise TrainError(f"the prompt cannot be rendered with the training template: {rendered.message}")
    text, _ = rendered.split()
    ids = tuned.encoder.encode([Rendered([Segment(text, False)], locator)])[0].input_ids
    return text, ids


def generate_batch(tuned: Tuned, batch: list[list[int]], max_new_tokens: int) -> list[tuple[str, bool, int]]:
    """Greedy answers to token-id prompts, left-padded into one batch: (text, stopped on a stop id, tokens).
    A sequence that stops is padded after its stop token; one that does not ran the longest and has none."""
    import torch

    model, tokenizer, stops = tuned.model, tuned.tokenizer, tuned.stop_ids
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    width = max(len(ids) for ids in batch)
    device = next(model.parameters()).device
    inputs = torch.tensor([[pad] * (width - len(ids)) + ids for ids in batch], device=device)
    mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=device)
    with torch.no_grad():
        output = model.generate(input_ids=inputs, attention_mask=mask, do_sample=False, max_new_tokens=max_new_tokens,
                                eos_token_id=stops, pad_token_id=pad)
    results = []
    for row in output[:, width:].tolist():
        end = next((i for i, t in enumerate(row) if t in stops), None)
        if end is None:
            results.append((tokenizer.decode(row, skip_special_tokens=False), False, len(row)))
        else:
            results.append((tokenizer.decode(row[:end], skip_special_tokens=False), True, end + 1))
    return results


def merge(out_dir: str | os.PathLike[str], merged_dir: str | os.PathLike[str], *, overwrite: bool = False,
          base_weights: BaseWeights = "trained") -> Path:
    """Adapter + the base it trained against (`trained`: the 4-bit round trip of the base weights, as peft
    merges into a 4-bit model; `dequantized`: the plain 16-bit weights) → a plain safetensors model (and
    tokenizer) in merged_dir."""
    from peft import PeftModel

    from .roundtrip import load_base

    out, target = Path(out_dir), Path(merged_dir)
    info = read_info(out)
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise TrainError("the merge target is not empty", file=str(target), hint=f"pass {option('overwrite', True)} or pick another")
    config = TrainConfig.model_validate(info["config"])
    base = load_base(_source(info), config, precision=_precision(info), device_map=_device_map(),
                     weights=base_weights)
    merged = PeftModel.from_pretrained(base, str(out)).merge_and_unload()
    merged.to(torch_dtype("fp16" if info["precision"] == "fp16" else "bf16"))  # merged in fp32 on CPU, saved 16-bit
    target.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(target)
    load_tokenizer(out).save_pretrained(target)
    (target / "sftdata_merged.json").write_text(
        (out / INFO).read_text(encoding="utf-8"), encoding="utf-8")
    return target


def _source(info: dict[str, Any]) -> ModelSource:
    base = info["base_model"]
    if base["kind"] == "gguf" and not Path(base["path"]).is_dir():
        return resolve_model(base["spec"])  # converted again into this machine's cache
    return ModelSource(base["spec"], base["path"], base["kind"], base.get("sha256"))


def _precision(info: dict[str, Any]) -> str:
    import torch

    if torch.cuda.is_available():
        return info["precision"] if info["precision"] != "fp32" else "bf16"
    return "fp32"


def _device_map() -> dict[str, Any]:
    import torch

    return {"": 0} if torch.cuda.is_available() else {"": "cpu"}


def _renderer(out: Path, info: dict[str, Any], tokenizer: Any) -> tuple[Any, Any]:
    """The training template, by the name and hash the run recorded."""
    from ..items import Style
    from ..rendering.plan import RenderPlan
    from ..schemas.records import RecordKind

    ref = info["template"]
    if ref.get("origin") == "tokenizer":
        name = "chat"
    elif ref["name"] in registry.BUILTIN and _sha(registry.BUILTIN[ref["name"]].path) == ref["sha256"]:
        name = ref["name"]
    elif ref.get("file") and (out / ref["file"]).is_file():
        name = str(out / ref["file"])
    else:
        raise TrainError(f"the run's template {ref['name']!r} is not available (pretokenized data without its "
                         "template)", file=str(out))
    plan = RenderPlan(Style.text, name, info["eos"], str(out), tokenizer, template_args=dict(ref.get("args") or {}),
                      train_on=ref.get("train_on", "all"))
    kind = RecordKind(ref["kind"]) if ref.get("kind") else RecordKind.instruction
    renderer = plan.renderer_for(kind)
    if ref.get("sha256") and renderer.template.sha256 != ref["sha256"]:
        raise TrainError(f"template {ref['name']!r} changed since training (sha256 {renderer.template.sha256[:12]}… "
                         f"≠ {ref['sha256'][:12]}…)", file=str(out))
    return renderer, plan


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_text(encoding="utf-8").encode("utf-8")).hexdigest()


def _stop_ids(tokenizer: Any, info: dict[str, Any]) -> list[int]:
    if info.get("eos_id") is not None:
        return [int(info["eos_id"])]
    raise TrainError(f"the trained EOS {info['eos']!r} is not a single token of this tokenizer; generation "
                     "could not stop on it")
