"""llama.cpp's converters, run where they live: a llama.cpp source tree (``--llama-cpp DIR`` or
``LLAMA_CPP_DIR``; the llama-cpp-python sdist carries one under ``vendor/llama.cpp``) found and checked,
its scripts run as a subprocess importing that tree's own ``gguf-py`` (so converter and gguf package always
match), and the metadata of the GGUF files they write read back. Used by the export (sftdata.trainers.gguf)
and by the 16-bit base a LoRA is served on (sftdata.trainers.basegguf).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BackendError, TrainError

ENV = "LLAMA_CPP_DIR"
_SCRIPTS = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py")
_GET = ("pip download --no-deps --no-binary :all: llama-cpp-python==VERSION, unpack it and pass "
        "llama_cpp_python-VERSION/vendor/llama.cpp")
# Prints where `import gguf` resolves when imported the way the converters import it.
_PROBE = "import gguf, sys; sys.stdout.write(gguf.__file__)"


@dataclass(frozen=True, slots=True)
class LlamaCpp:
    """A llama.cpp source tree holding the converters and the gguf-py they import."""

    root: Path
    gguf_version: str

    def script(self, name: str) -> Path:
        return self.root / name

    def env(self) -> dict[str, str]:
        """The converters put their own gguf-py first unless NO_LOCAL_GGUF is set: never let it be."""
        env = {k: v for k, v in os.environ.items() if k != "NO_LOCAL_GGUF"}
        gguf_py = str(self.root / "gguf-py")
        env["PYTHONPATH"] = os.pathsep.join([gguf_py] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        env.setdefault("HF_HUB_OFFLINE", "1")  # --base is a local folder; nothing to fetch
        return env


def find_llama_cpp(directory: str | os.PathLike[str] | None = None) -> LlamaCpp:
    """The converter tree from ``directory`` or $LLAMA_CPP_DIR, checked; TrainError naming what is wrong."""
    given = os.fspath(directory) if directory else os.environ.get(ENV)
    if not given:
        raise TrainError("no llama.cpp converters: export-gguf runs llama.cpp's convert_hf_to_gguf.py / "
                         "convert_lora_to_gguf.py", hint=f"pass --llama-cpp DIR or set {ENV}; to get them: {_GET}")
    root = Path(given).expanduser()
    if (root / "vendor" / "llama.cpp" / _SCRIPTS[0]).is_file():  # the unpacked llama-cpp-python sdist
        root = root / "vendor" / "llama.cpp"
    if not root.is_dir():
        raise TrainError("the llama.cpp directory does not exist", file=str(root), hint=f"to get one: {_GET}")
    missing = [name for name in _SCRIPTS if not (root / name).is_file()]
    if missing:
        raise TrainError(f"not a llama.cpp source tree: no {', '.join(missing)}", file=str(root),
                         hint=f"to get one: {_GET}")
    pyproject = root / "gguf-py" / "pyproject.toml"
    if not (root / "gguf-py" / "gguf" / "__init__.py").is_file() or not pyproject.is_file():
        raise TrainError("the llama.cpp tree has no gguf-py/ beside its converters, so they would import whatever "
                         "gguf package is installed, whose version need not match them", file=str(root),
                         hint=f"use a complete llama.cpp tree ({_GET})")
    version = re.search(r'^version\s*=\s*"([^"]+)"', pyproject.read_text(encoding="utf-8"), re.M)
    if version is None:
        raise TrainError("cannot read the gguf-py version", file=str(pyproject))
    if "from conversion import" in (root / _SCRIPTS[0]).read_text(encoding="utf-8", errors="replace") \
            and not (root / "conversion" / "__init__.py").is_file():
        raise TrainError("the converter imports its conversion/ package, which is missing", file=str(root))
    tree = LlamaCpp(root.resolve(), version.group(1))
    _check_gguf_import(tree)
    return tree


def _check_gguf_import(tree: LlamaCpp) -> None:
    """`import gguf` in the converter's environment must be this tree's gguf-py, not an installed one."""
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=tree.env(),
                              cwd=tree.root, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BackendError(f"cannot run Python to check the converters: {error}") from None
    if proc.returncode != 0:
        raise TrainError(f"the converters' gguf-py does not import: {_tail(proc.stderr, 3)}", file=str(tree.root))
    where = Path(proc.stdout.splitlines()[0]).resolve()
    if not where.is_relative_to(tree.root / "gguf-py"):
        raise TrainError(f"`import gguf` resolves to {where}, not to the converters' own gguf-py "
                         f"{tree.gguf_version}", file=str(tree.root), hint="unset PYTHONPATH entries that shadow it")


def run_converter(tree: LlamaCpp, args: list[str], what: str) -> None:
    try:
        proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=tree.env(), cwd=tree.root)
    except OSError as error:
        raise BackendError(f"cannot run {what}: {error}") from None
    if proc.returncode != 0:
        raise BackendError(f"{what} failed (exit {proc.returncode}): {_tail(proc.stdout + proc.stderr, 12)}",
                           file=str(tree.root))


def _tail(text: str, lines: int) -> str:
    return " | ".join(line for line in text.strip().splitlines()[-lines:] if line.strip())


def read_metadata(path: Path, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Scalar and string metadata of a GGUF file (arrays left out), through the gguf package."""
    try:
        from gguf import GGUFReader
        from gguf.constants import GGUFValueType
    except ImportError:
        raise TrainError("reading GGUF metadata needs the gguf package", hint="pip install 'sftdata[tokenizers]'") from None
    try:
        reader = GGUFReader(path)
    except Exception as error:  # gguf raises ValueError/struct errors for a file that is not GGUF
        raise TrainError(f"not a readable GGUF file: {type(error).__name__}: {error}", file=str(path)) from None
    values: dict[str, Any] = {}
    for name, fld in reader.fields.items():
        if (keys is not None and name not in keys) or not fld.types or fld.types[0] == GGUFValueType.ARRAY:
            continue
        values[name] = fld.contents()
    return values
