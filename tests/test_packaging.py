"""The package as a user installs it: from a built wheel, with schemas/templates/trainers only under
the sftdata namespace (the repository keeps them at the top level) and the .jinja files inside."""
from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = ("sftdata", "schemas", "templates", "trainers")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the sources, so the build leaves nothing in the checkout."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, src / name)
    for name in PACKAGE_DIRS:
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(base / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    [built] = (base / "dist").glob("sftdata-*.whl")
    return built


def test_wheel_holds_only_the_sftdata_namespace(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"sftdata"}
    for package in ("sftdata/schemas/records.py", "sftdata/templates/__init__.py", "sftdata/trainers/__init__.py",
                    "sftdata/ingest/readers.py", "sftdata/ingest/encodings.py", "sftdata/ingest/tabular.py"):
        assert package in names
    for folder in PACKAGE_DIRS:  # every module of every subpackage, not only the ones listed by hand
        prefix = "sftdata/" if folder == "sftdata" else f"sftdata/{folder}/"
        for module in (REPO / folder).rglob("*.py"):
            assert prefix + module.relative_to(REPO / folder).as_posix() in names, module
    jinja = {Path(n).name for n in names if n.startswith("sftdata/templates/") and n.endswith(".jinja")}
    assert {p.name for p in (REPO / "templates").glob("*.jinja")} == jinja and jinja
    review = {n.removeprefix("sftdata/reviewing/") for n in names if n.startswith("sftdata/reviewing/")}
    shipped = {p.relative_to(REPO / "sftdata" / "reviewing").as_posix()
               for folder in ("pages", "static") for p in (REPO / "sftdata" / "reviewing" / folder).iterdir()}
    assert shipped and shipped <= review  # the review app's pages, script and stylesheet: nothing from a CDN
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "sftdata = sftdata.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_wheel_imports_from_outside_the_checkout(wheel, tmp_path):
    target = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "-q", "--target",
                           str(target), str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    installed = {p.name for p in target.iterdir() if not p.name.endswith(".dist-info")}
    assert installed - {"bin"} == {"sftdata"}  # bin/ holds the console script
    code = """
import importlib.util, sys
import sftdata, sftdata.schemas, sftdata.templates, sftdata.trainers, sftdata.ingest.readers
from sftdata.schemas import InstructionRecord
from sftdata.templates import BUILTIN
target = sys.argv[1]
for module in (sftdata, sftdata.schemas, sftdata.templates, sftdata.trainers):
    assert module.__file__.startswith(target), module.__file__
assert all(t.path.is_file() and str(t.path).startswith(target) for t in BUILTIN.values())
for name in ("schemas", "templates", "trainers"):
    assert importlib.util.find_spec(name) is None, name
InstructionRecord(instruction="a", output="b")
print("ok")
"""
    # -S: no site processing, so the checkout's editable install (a .pth hook) cannot answer the
    # imports; the dependencies come from this interpreter's site-packages, after the target.
    paths = [str(target), *dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([sys.executable, "-S", "-c", code, str(target)], cwd=elsewhere, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": ":".join(paths), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
