"""A command on an engine: the registry's declaration (the function each split runs, the figures that add
up) handed to sftdata.scale, which never needs to know the commands by name."""
from __future__ import annotations

from typing import Any

from ..errors import OptionError
from .options import Files, PathLike
from .registry import COMMANDS


def on_engine(name: str, inputs: Files, output: PathLike, engine: str, address: str | None, split_mib: float,
              concat: bool, options: dict[str, Any]) -> Any:
    """Run command `name` split by split on `engine`: each task calls the command's `split` function on one
    split with `options` and sidecar=False; the driver sums its `sums` and writes one _meta.json."""
    from ..scale.commands import ScaledCommand, run_command

    declared = COMMANDS[name]
    if declared.split is None:
        raise OptionError(f"{name} runs locally only", option="engine", value=engine)
    job = ScaledCommand(name, declared.split, declared.sums, options, declared.split_tokenizer == "light")
    return run_command(job, inputs, output, engine=engine, address=address, split_mib=split_mib, concat=concat)
