"""Lint is part of the test run: `ruff check .` with the rules in pyproject.toml ([tool.ruff]) passes, and it
sees every package folder (a folder named like a build output, such as dist/, would be skipped silently)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _ruff() -> str:
    found = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert found, "ruff is not installed: it comes with the [test] extra"
    return found


def test_ruff_check_passes():
    done = subprocess.run([_ruff(), "check", "."], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_sees_every_package_folder():
    done = subprocess.run([_ruff(), "check", "--show-files", "."], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    seen = {Path(line.strip()).resolve().parent for line in done.stdout.splitlines() if line.strip().endswith(".py")}
    folders = {p.parent.resolve() for top in ("sftdata", "schemas", "templates", "trainers")
               for p in (REPO / top).rglob("__init__.py")}
    assert folders and folders <= seen, sorted(str(f.relative_to(REPO)) for f in folders - seen)
