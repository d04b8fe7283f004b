"""Checkpoints and --resume after a crash, and packing, on the real SmolLM2 on CPU (short runs)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from sftdata.errors import TrainError
from sftdata.trainers.config import resolve_config
from sftdata.trainers.qlora import train

STEPS = 4
SMALL = {"max_steps": STEPS, "batch_size": 2, "max_length": 128, "save_steps": 2, "lora_r": 4,
         "logging_steps": 1, "warmup_ratio": 0.0}


class Crash(Exception):
    pass


@pytest.fixture(scope="module")
def model_dir(smollm2_gguf: Path) -> Path:
    from sftdata.trainers.models import convert_gguf
    from support.realmodels import CACHE_DIR

    return convert_gguf(smollm2_gguf, cache=CACHE_DIR / "sftdata-cache" / "models")


@pytest.fixture(scope="module")
def records(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = json.loads((shared_data / "alpaca_en_demo.json").read_text(encoding="utf-8"))[:48]
    path = tmp_path_factory.mktemp("alpaca") / "alpaca.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _losses(out: Path) -> dict[int, float]:
    metrics = json.loads((out / "metrics.json").read_text())
    return {e["step"]: e["loss"] for e in metrics["train"]}


@pytest.mark.train  # trains in its own body: no fixture shows it
def test_resume_after_a_crash_matches_an_uninterrupted_run(model_dir: Path, records: Path, tmp_path: Path) -> None:
    config = resolve_config("cpu-smoke", SMALL)
    whole = train([records], model_dir, tmp_path / "whole", config=config, template="alpaca")
    assert whole.steps == STEPS

    def crash_after_step_3(event) -> None:
        if event.event == "step" and event.step == 3:
            raise Crash("simulated crash")

    out = tmp_path / "crashed"
    with pytest.raises(Crash):
        train([records], model_dir, out, config=config, template="alpaca", progress=crash_after_step_3)
    assert (out / "checkpoints" / "checkpoint-2").is_dir()
    assert json.loads((out / "sftdata_train.json").read_text())["status"] == "running"
    with pytest.raises(TrainError, match="already holds a run"):
        train([records], model_dir, out, config=config, template="alpaca")

    resumed = train([records], model_dir, out, config=config, template="alpaca", resume=True)
    assert resumed.steps == STEPS
    assert json.loads((out / "sftdata_train.json").read_text())["status"] == "done"
    before, after = _losses(tmp_path / "whole"), _losses(out)
    assert sorted(after) == list(range(1, STEPS + 1))  # the checkpoint's history plus steps 3 and 4
    for step in range(1, STEPS + 1):  # same data order, adapter, optimizer and RNG state
        assert after[step] == pytest.approx(before[step], rel=1e-3), (step, before, after)


def test_resume_needs_a_checkpoint_and_the_same_data(model_dir: Path, records: Path, tmp_path: Path) -> None:
    config = resolve_config("cpu-smoke", SMALL)
    with pytest.raises(TrainError, match="nothing to resume"):
        train([records], model_dir, tmp_path / "empty", config=config, resume=True)


@pytest.mark.train  # trains in its own body: no fixture shows it
def test_packing_trains_without_leakage(model_dir: Path, records: Path, tmp_path: Path) -> None:
    config = resolve_config("cpu-smoke", {**SMALL, "max_steps": 2, "packing": True, "padding_free": False,
                                          "max_length": 256})
    result = train([records], model_dir, tmp_path / "packed", config=config, template="alpaca")
    assert result.steps == 2
    info = json.loads((tmp_path / "packed" / "sftdata_train.json").read_text())
    assert info["config"]["packing"] and info["metrics"]["tokens"] > 2 * 2 * 100  # rows filled near 256
