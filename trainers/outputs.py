"""The output directory of a run, and reading it back for merge and generate.

```
OUT/
  adapter_config.json, adapter_model.safetensors   the LoRA adapter (peft, safetensors)
  tokenizer files                                    with the pad token the run used
  template.jinja                                     the exact template text the data was rendered with
  sftdata_train.json                                 template name + sha256, EOS/pad (text and id), base
                                                     model source, data file hashes, resolved config,
                                                     device, library versions, status, summary metrics
  config.yaml                                        the resolved config (reusable with --config)
  metrics.json, loss.png                             the loss curves
  README.md                                          a short model card
  checkpoints/checkpoint-N/                          periodic checkpoints, for --resume
```
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import orjson

from .. import __version__
from ..errors import TrainError
from ..writers import AtomicFile, write_json
from .plot import BLUE, ORANGE, loss_png

INFO = "sftdata_train.json"
TEMPLATE = "template.jinja"
CHECKPOINTS = "checkpoints"
_OWN = (INFO, "config.yaml", "metrics.json", "loss.png", "README.md", TEMPLATE, "adapter_config.json",
        "adapter_model.safetensors")


def prepare_dir(out: Path, resume: bool, overwrite: bool) -> str | None:
    """The checkpoint to resume from (None for a fresh run); refuses to mix two runs in one dir."""
    checkpoints = out / CHECKPOINTS
    if resume:
        last = last_complete_checkpoint(checkpoints)
        if last is None:
            raise TrainError("nothing to resume: no checkpoint in this directory", file=str(checkpoints),
                             hint="start without --resume")
        return last
    if checkpoints.exists() or (out / INFO).exists():
        if not overwrite:
            raise TrainError("the output directory already holds a run", file=str(out),
                             hint="pass --resume to continue it, or --overwrite to start over")
        shutil.rmtree(checkpoints, ignore_errors=True)
        for name in _OWN:
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    return None


def last_complete_checkpoint(checkpoints: Path) -> str | None:
    """The newest checkpoint that was written to the end. The Trainer writes trainer_state.json last,
    so a checkpoint-N without a readable one is what a kill during its save left: skip it."""
    found: list[tuple[int, Path]] = []
    for path in checkpoints.glob("checkpoint-*") if checkpoints.is_dir() else ():
        step = path.name.removeprefix("checkpoint-")
        if step.isdigit() and path.is_dir():
            found.append((int(step), path))
    for _, path in sorted(found, reverse=True):
        try:
            orjson.loads((path / "trainer_state.json").read_bytes())
        except (OSError, orjson.JSONDecodeError):
            continue
        return str(path)
    return None


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"sftdata": __version__}
    for name in ("torch", "transformers", "trl", "peft", "bitsandbytes", "accelerate"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def read_info(out: Path) -> dict[str, Any]:
    try:
        return orjson.loads((out / INFO).read_bytes())
    except OSError:
        raise TrainError(f"not a training output directory (no {INFO})", file=str(out)) from None
    except orjson.JSONDecodeError as error:
        raise TrainError(f"unreadable {INFO}: {error}", file=str(out)) from None


def require_done(out: Path, info: dict[str, Any]) -> None:
    """generate, merge and export need the final adapter of a finished run."""
    if info.get("status") != "done" or not (out / "adapter_config.json").is_file():
        raise TrainError("the run has not finished (no final adapter)", file=str(out),
                         hint="finish it with `sftdata train ... --resume`")


def check_resume(out: Path, info: dict[str, Any]) -> None:
    """A resumed run must train on the same data files as the run it continues."""
    before = read_info(out)
    old = [s["sha256"] for s in before.get("data", {}).get("sources", [])]
    new = [s["sha256"] for s in info["data"]["sources"]]
    if old and old != new:
        raise TrainError("the data differs from the run being resumed (file hashes changed)", file=str(out),
                         hint="resume with the same DATA, or start a new run")


def write_start(out: Path, info: dict[str, Any], config_yaml: str, template_source: str | None) -> None:
    with AtomicFile(out / "config.yaml") as handle:
        handle.write(config_yaml.encode("utf-8"))
    if template_source is not None:
        with AtomicFile(out / TEMPLATE) as handle:
            handle.write(template_source.encode("utf-8"))
    write_json(out / INFO, info)


def curves(log_history: list[dict[str, Any]]) -> dict[str, list[dict[str, float]]]:
    train = [{"step": e["step"], "loss": e["loss"], "learning_rate": e.get("learning_rate"),
              "grad_norm": e.get("grad_norm"), "num_tokens": e.get("num_tokens"), "epoch": e.get("epoch")}
             for e in log_history if "loss" in e]
    evals = [{"step": e["step"], "eval_loss": e["eval_loss"]} for e in log_history if "eval_loss" in e]
    return {"train": train, "eval": evals}


def write_final(out: Path, info: dict[str, Any], log_history: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """metrics.json, loss.png, README.md, and the finished sftdata_train.json; returns the summary."""
    curve = curves(log_history)
    train = curve["train"]
    counts = (info.get("data") or {}).get("counts") or {}
    summary = {"steps": max((e["step"] for e in log_history), default=0), "seconds": round(seconds, 1),
               "first_loss": _round(train[0]["loss"]) if train else None,
               "final_loss": _round(train[-1]["loss"]) if train else None,
               "final_eval_loss": _round(curve["eval"][-1]["eval_loss"]) if curve["eval"] else None,
               "tokens": train[-1]["num_tokens"] if train else None,
               "samples": (info.get("data") or {}).get("samples"), "dropped_too_long": counts.get("too_long", 0),
               "cpu_threads": info.get("cpu_threads")}
    write_json(out / "metrics.json", {"summary": summary, **curve, "log_history": log_history})
    loss_png(out / "loss.png", [([(e["step"], e["loss"]) for e in train], BLUE),
                                ([(e["step"], e["eval_loss"]) for e in curve["eval"]], ORANGE)])
    info = {**info, "status": "done", "finished": _now(), "metrics": summary}
    write_json(out / INFO, info)
    with AtomicFile(out / "README.md") as handle:
        handle.write(model_card(info).encode("utf-8"))
    return summary


def write_interrupted(out: Path, info: dict[str, Any], step: int) -> None:
    write_json(out / INFO, {**info, "status": "interrupted", "interrupted_at_step": step, "finished": _now()})


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def model_card(info: dict[str, Any]) -> str:
    base, data, cfg = info["base_model"], info["data"], info["config"]
    template, metrics = info["template"], info.get("metrics", {})
    sources = "\n".join(f"- `{s['path']}` ({s['bytes']:,} bytes, sha256 `{s['sha256']}`)" for s in data["sources"])
    quant = f"4-bit {cfg['quant_type']}" if cfg["load_in_4bit"] else "16-bit"
    return f"""# LoRA adapter trained with sftdata

- **Base model**: `{base['spec']}` ({base['kind']}{', sha256 `' + base['sha256'] + '`' if base.get('sha256') else ''})
- **Method**: QLoRA SFT ({quant} base, LoRA r={cfg['lora_r']}, alpha={cfg['lora_alpha']}, dropout {cfg['lora_dropout']}, targets {cfg['target_modules']})
- **Template**: `{template['name']}` (sha256 `{template['sha256']}`), saved as `{TEMPLATE}` when known
- **EOS** (trained at the end of every completion): `{info['eos']}` (id {info['eos_id']}); **pad**: `{info['pad']}` (id {info['pad_id']})
- **Data** ({data['format']}): {data['samples']:,} samples, {data['tokens']:,} tokens, {data['trained_tokens']:,} with a loss
{sources}
- **Training**: {metrics.get('steps')} steps, batch {cfg['batch_size']} x accumulation {cfg['grad_accum']}, lr {cfg['learning_rate']} ({cfg['lr_scheduler']}), {info['precision']} on {info['device']}, {metrics.get('seconds')} s
- **Loss**: {metrics.get('first_loss')} → {metrics.get('final_loss')} (curve in `metrics.json`, `loss.png`)

Use it with the same template and stop token:

```bash
sftdata generate {info.get('out_dir', 'OUT')} --prompt "..." --compare-base
sftdata merge {info.get('out_dir', 'OUT')} -o merged/
```
"""
