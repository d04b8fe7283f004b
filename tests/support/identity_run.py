"""One identity training run per test session, shared by the modules that need a trained adapter.

`sftdata train` through the CLI, from the SmolLM2 .gguf file, on the shared identity.json with its
{{name}}/{{author}} placeholders filled in here (data preparation): the adapter learns to call itself
NAME. test_train_run checks the run itself; test_export_gguf exports and serves it with llama.cpp.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

NAME, AUTHOR = "Hanbit", "sftdata team"
# The fewest steps that reliably teach the name with this seed (batch 8 of 91 samples, lr 2e-3).
STEPS = 30


@pytest.fixture(scope="session")
def identity_records(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = json.loads((shared_data / "identity.json").read_text(encoding="utf-8"))
    path = tmp_path_factory.mktemp("identity") / "identity.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            filled = {k: v.replace("{{name}}", NAME).replace("{{author}}", AUTHOR) for k, v in row.items()}
            handle.write(json.dumps(filled, ensure_ascii=False) + "\n")
    return path


@pytest.fixture(scope="session")
def sftdata_cache() -> Path:
    """The GGUF → safetensors conversion is cached beside the test models, across sessions."""
    from .realmodels import CACHE_DIR

    return CACHE_DIR / "sftdata-cache"


@pytest.fixture(scope="session")
def identity_run(smollm2_gguf: Path, identity_records: Path, sftdata_cache: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> dict:
    """{"out": run dir, "summary": train's --json line, "records": data file, "info": sftdata_train.json}."""
    from typer.testing import CliRunner

    from sftdata.cli import app

    out = tmp_path_factory.mktemp("runs") / "identity"
    args = ["train", str(identity_records), "--model", str(smollm2_gguf), "-o", str(out), "--config", "cpu-smoke",
            "--template", "chatml", "--max-steps", str(STEPS), "--lr", "2e-3", "--batch-size", "8",
            "--save-steps", "10", "--json"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SFTDATA_CACHE", str(sftdata_cache))
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    return {"out": out, "summary": summary, "records": identity_records,
            "info": json.loads((out / "sftdata_train.json").read_text(encoding="utf-8"))}
