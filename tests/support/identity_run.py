"""One identity training run per test session, shared by the modules that need a trained adapter.

`sftdata train` through the CLI, from the SmolLM2 .gguf file, on the shared identity.json with its
{{name}}/{{author}} placeholders filled in here (data preparation): the adapter learns to call itself
NAME. test_train_run checks the run itself; test_export_gguf exports and serves it with llama.cpp.

`alpaca_identity_run` is the case of issue 27: the same rows (authored by Seed Lab), the Alpaca template,
60 steps at lr 1e-3 (batch 4). Its adapter is sensitive to the base it is served on: on the 4-bit round
trip it trained against it answers "Who are you?" with the new name (in-process and in llama.cpp), on the
plain dequantized Q4_1 weights without it (measured), so serving it proves which base serve-check uses.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

NAME, AUTHOR = "Hanbit", "sftdata team"
ALPACA_AUTHOR = "Seed Lab"
# The fewest steps that reliably teach the name with this seed (batch 8 of 91 samples, lr 2e-3).
STEPS = 30


def _fill(shared_data: Path, path: Path, author: str) -> Path:
    rows = json.loads((shared_data / "identity.json").read_text(encoding="utf-8"))
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            filled = {k: v.replace("{{name}}", NAME).replace("{{author}}", author) for k, v in row.items()}
            handle.write(json.dumps(filled, ensure_ascii=False) + "\n")
    return path


@pytest.fixture(scope="session")
def identity_records(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _fill(shared_data, tmp_path_factory.mktemp("identity") / "identity.jsonl", AUTHOR)


@pytest.fixture(scope="session")
def sftdata_cache() -> Path:
    """The GGUF → safetensors conversion is cached beside the test models, across sessions."""
    from .realmodels import CACHE_DIR

    return CACHE_DIR / "sftdata-cache"


@pytest.fixture(scope="session")
def identity_run(smollm2_gguf: Path, identity_records: Path, sftdata_cache: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> dict:
    """{"out": run dir, "summary": train's --json line, "records": data file, "info": sftdata_train.json}."""
    out = tmp_path_factory.mktemp("runs") / "identity"
    args = ["train", str(identity_records), "--model", str(smollm2_gguf), "-o", str(out), "--config", "cpu-smoke",
            "--template", "chatml", "--max-steps", str(STEPS), "--lr", "2e-3", "--batch-size", "8",
            "--save-steps", "10", "--json"]
    return _train(args, out, identity_records, sftdata_cache)


@pytest.fixture(scope="session")
def alpaca_identity_run(smollm2_gguf: Path, shared_data: Path, sftdata_cache: Path,
                        tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Issue 27's run: Alpaca, 60 steps, lr 1e-3, batch 4 (cpu-smoke's), the rows authored by Seed Lab."""
    records = _fill(shared_data, tmp_path_factory.mktemp("identity-alpaca") / "identity.jsonl", ALPACA_AUTHOR)
    out = tmp_path_factory.mktemp("runs") / "identity-alpaca"
    args = ["train", str(records), "--model", str(smollm2_gguf), "-o", str(out), "--config", "cpu-smoke",
            "--template", "alpaca", "--max-steps", "60", "--lr", "1e-3", "--save-steps", "60", "--json"]
    return _train(args, out, records, sftdata_cache)


def _train(args: list[str], out: Path, records: Path, sftdata_cache: Path) -> dict:
    from typer.testing import CliRunner

    from sftdata.cli import app

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SFTDATA_CACHE", str(sftdata_cache))
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    return {"out": out, "summary": summary, "records": records,
            "info": json.loads((out / "sftdata_train.json").read_text(encoding="utf-8"))}
