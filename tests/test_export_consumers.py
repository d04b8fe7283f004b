"""Every export loaded by its consumer at the oldest and the newest `datasets` the project supports.

The newest is the one installed with `[test]`; the oldest (pyproject's floor, datasets 4.0.0, which
LLaMA-Factory pins) lives in a second small venv, cached beside the test models. Each export of tool-calling
chats (glaive through --preset sharegpt), Alpaca records and the bundled Korean Q&A must open with
`load_dataset` in both, with every written row there.
"""
from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

import sftdata
from support.realmodels import CACHE_DIR, _locked, _run, _tmp_name

REPO = Path(__file__).resolve().parents[1]
OLDEST = "4.0.0"
FORMATS = {"trl": "trl.jsonl", "openai": "openai.jsonl", "axolotl": "axolotl", "hf": "hf", "llamafactory": "lf"}
LOADER = """
import glob, json, sys
import datasets
out = {}
for name, path in json.loads(sys.argv[1]).items():
    try:
        if name == "hf":
            data = datasets.load_dataset(path)
        else:
            files = sorted(glob.glob(path + "/*.jsonl")) + sorted(p for p in glob.glob(path + "/*.json")
                                                                  if not p.endswith("dataset_info.json"))
            data = datasets.load_dataset("json", data_files=files if files else path)
        out[name] = sum(d.num_rows for d in data.values())
    except Exception as error:
        out[name] = f"{type(error).__name__}: {error}"[:400]
print(json.dumps({"version": datasets.__version__, "rows": out}))
"""


@pytest.fixture(scope="module")
def oldest_python() -> Path:
    """A venv with datasets at the oldest supported version (created once, cached)."""
    artifact = f"venv-datasets-{OLDEST}"
    target = CACHE_DIR / artifact
    python = target / "bin" / "python"
    if python.is_file():
        return python
    with _locked(artifact):
        if not python.is_file():
            tmp = _tmp_name(artifact)
            venv.create(tmp, with_pip=True)
            _run(f"installing datasets=={OLDEST}", [str(tmp / "bin" / "python"), "-m", "pip", "install", "-q",
                                                    f"datasets=={OLDEST}"])
            tmp.rename(target)
    return python


@pytest.fixture(scope="module")
def exports(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, tuple[str, int]]]:
    root = tmp_path_factory.mktemp("consumers")
    sources = {
        "glaive": sftdata.convert([shared_data / "glaive_toolcall_en_demo.json"], root / "glaive.jsonl",
                                  preset="sharegpt"),
        "alpaca": sftdata.convert([shared_data / "alpaca_en_demo.json"], root / "alpaca.jsonl", preset="alpaca"),
        "ko_qa": sftdata.convert([REPO / "examples" / "ko_qa" / "labels"], root / "ko_qa.jsonl",
                                 mapping=REPO / "examples" / "ko_qa" / "mapping.yaml"),
    }
    out: dict[str, dict[str, tuple[str, int]]] = {}
    for name, converted in sources.items():
        out[name] = {}
        for fmt, target in FORMATS.items():
            path = root / name / target
            path.parent.mkdir(exist_ok=True)
            result = sftdata.export(converted.output, path, fmt)
            if fmt == "axolotl":
                path = path / "train.jsonl"
            out[name][fmt] = (str(path), result.summary()["written"])
    return out


def _load(python: str | Path, paths: dict[str, str]) -> dict:
    done = subprocess.run([str(python), "-c", LOADER, json.dumps(paths)], capture_output=True, text=True, timeout=600,
                          env={"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("source", ["glaive", "alpaca", "ko_qa"])
def test_every_export_loads_in_the_oldest_and_newest_datasets(exports, oldest_python, source):
    paths = {fmt: path for fmt, (path, _) in exports[source].items()}
    written = {fmt: n for fmt, (_, n) in exports[source].items()}
    for python in (oldest_python, sys.executable):
        loaded = _load(python, paths)
        assert loaded["rows"] == written, (loaded["version"], source, loaded["rows"])
        assert all(n > 0 for n in written.values())
