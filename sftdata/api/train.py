"""The training commands: train, plan, merge, generate (the library is sftdata.trainers).

Every TrainConfig field is an option of `train` and `plan` (`--lora-r 16 --lr 2e-4 --max-steps 30
--packing`) and a keyword argument of their functions (`lora_r=16`), read from the config model so the help,
the flags and the errors always agree.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from ..trainers.config import TrainConfig, presets
from .options import BaseWeights, Files, PathLike, TemplateArgs, TrainOn
from .registry import Arg, Opt, command

if TYPE_CHECKING:
    from ..trainers.infer import Generation
    from ..trainers.plan import Plan
    from ..trainers.qlora import TrainResult

Config = Annotated[PathLike | None, Opt("--config", "-c", help=f"A preset ({', '.join(presets())}) or a YAML file.")]
Run = Annotated[PathLike, Arg("A training output directory.")]


def _overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """TrainConfig fields as given; `target_modules="q_proj,v_proj"` (as a flag gives it) becomes a list."""
    modules = overrides.get("target_modules")
    if isinstance(modules, str) and modules != "all-linear":
        return {**overrides, "target_modules": modules.split(",")}
    return overrides


@command(group="train", overrides=TrainConfig)
def train(
    data: Annotated[Files, Arg("Records JSONL (as convert writes it) or pretokenize output.")],
    model: Annotated[PathLike, Opt("--model", "-m", help="Base model: HF directory, .gguf file or hub id.")],
    output: Annotated[PathLike, Opt("--output", "-o", help="Output directory (adapter, template, metrics).")],
    *,
    config: Config = None,
    template: Annotated[str | None, Opt("--template", "-t", help="Template for records input (default: auto).")] = None,
    template_args: TemplateArgs = None,
    train_on: TrainOn = "all",
    eval_data: Annotated[Files | None, Opt("--eval", help="Evaluation data, same formats as DATA.")] = None,
    resume: Annotated[bool, Opt(help="Continue from the last checkpoint in OUT_DIR.")] = False,
    overwrite: Annotated[bool, Opt(help="Replace a previous run in OUT_DIR.")] = False,
    progress: Any = None,
    **overrides: Any,
) -> TrainResult:
    """Train a QLoRA adapter on SFT data (TRL SFTTrainer + peft + bitsandbytes).

    Example: `sftdata train train.jsonl --model SmolLM2.gguf -o runs/a --config cpu-smoke --max-steps 40`.
    Several GPUs: `accelerate launch --num_processes 4 -m sftdata.cli train ...` (DDP).
    """
    from ..rendering.plan import parse_template_args
    from ..trainers.config import resolve_config
    from ..trainers.qlora import train as run

    out = Path(output)
    base = config or (out / "config.yaml" if resume and (out / "config.yaml").is_file() else None)
    cfg = resolve_config(base, _overrides(overrides))
    return run(list(data), model, out, config=cfg, template=template, eval_data=list(eval_data) if eval_data else None,
               resume=resume, overwrite=overwrite, template_args=parse_template_args(template_args), train_on=train_on,
               progress=progress)


@command(group="train", overrides=TrainConfig)
def plan(
    model: Annotated[PathLike, Opt("--model", "-m", help="Model directory (config.json), .gguf file or hub id.")],
    *,
    config: Config = None,
    gpu: Annotated[str | None, Opt(help="t4, a100-40, a100-80 or h100: say whether it fits.")] = None,
    **overrides: Any,
) -> Plan:
    """Estimate peak GPU memory of a run from the model's config alone, before anything is loaded.

    Example: `sftdata plan --model ./Llama-3-8B --config t4-8b --gpu t4`
    """
    from ..trainers import plan as planner
    from ..trainers.config import resolve_config

    return planner.plan(planner.read_arch(model), resolve_config(config, _overrides(overrides)), gpu)


@command(group="train")
def merge(
    run: Run,
    output: Annotated[PathLike, Opt("--output", "-o", help="Directory for the merged model.")],
    *,
    overwrite: Annotated[bool, Opt(help="Write into a non-empty directory.")] = False,
    base_weights: BaseWeights = "trained",
) -> Path:
    """Merge the adapter into the base weights it trained against and save plain safetensors.

    Example: `sftdata merge runs/a -o runs/a-merged`
    """
    from ..trainers.infer import merge as run_merge

    return run_merge(run, output, overwrite=overwrite, base_weights=base_weights)


@command(group="train")
def generate(
    run: Run,
    prompt: Annotated[Sequence[str], Opt("--prompt", "-p", help="A prompt (repeatable).")],
    *,
    max_new_tokens: Annotated[int, Opt(help="Longest answer in tokens.")] = 128,
    compare_base: Annotated[bool, Opt(help="Also answer with the adapter off.")] = False,
    progress: Any = None,
) -> list[Generation]:
    """Answer prompts with the tuned model, rendered with the training template, stopping at its EOS.

    Example: `sftdata generate runs/a --prompt "Who are you?" --compare-base`
    """
    from ..trainers.infer import generate as run_generate

    return run_generate(run, list(prompt), max_new_tokens=max_new_tokens, compare_base=compare_base,
                        progress=progress)
