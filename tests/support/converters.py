"""llama.cpp's GGUF converters for the export tests, from the llama-cpp-python sdist on PyPI.

The sdist (76 MB, the same version `llama_server.py` installs) carries llama.cpp's source under
``vendor/llama.cpp``. Only what the converters run is unpacked: ``convert_hf_to_gguf.py``,
``convert_lora_to_gguf.py``, their ``conversion/`` package and ``gguf-py/`` (about 2 MB), and the published
chat templates llama.cpp vendors under ``models/templates/`` (tests/support/chatparts.py), into
``$SFTDATA_TEST_CACHE/llama.cpp-<version>/`` (temp name + rename, under a lock; see realmodels.py).
Nothing of it is copied into the repository.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

from .llama_server import LLAMA_CPP_VERSION
from .realmodels import CACHE_DIR, _locked, _run, _tmp_name

_KEEP = re.compile(r"^[^/]+/vendor/llama\.cpp/(convert_hf_to_gguf\.py|convert_lora_to_gguf\.py|conversion/.*|gguf-py/.*"
                   r"|models/templates/.*)$")


def llama_cpp_dir() -> Path:
    """The unpacked converter tree (what `--llama-cpp` / LLAMA_CPP_DIR point at)."""
    artifact = f"llama.cpp-{LLAMA_CPP_VERSION}"
    target = CACHE_DIR / artifact
    if _complete(target):
        return target
    with _locked(artifact):
        if _complete(target):
            return target
        if target.exists():  # unpacked before the templates were kept: unpack again, once
            old = _tmp_name(artifact).with_name(f".{artifact}.tmp-old-{os.getpid()}")
            os.rename(target, old)  # a process still reading the old tree keeps its open files
            shutil.rmtree(old)
        with tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix=f".{artifact}.tmp-dl-") as dl:
            # An sdist: pip prepares its metadata, which needs the build backend (fetched from PyPI).
            _run(f"pip download of the llama-cpp-python {LLAMA_CPP_VERSION} sdist",
                 [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                  "--no-cache-dir", "--dest", dl, f"llama-cpp-python=={LLAMA_CPP_VERSION}"])
            sdists = list(Path(dl).glob("llama_cpp_python-*.tar.gz"))
            if len(sdists) != 1:
                raise RuntimeError(f"expected one llama-cpp-python sdist in {dl}, found {sorted(os.listdir(dl))}")
            tmp = _tmp_name(artifact)
            with tarfile.open(sdists[0]) as tar:
                members = [m for m in tar.getmembers() if _KEEP.match(m.name) and (m.isfile() or m.isdir())]
                for member in members:
                    member.name = member.name.split("/vendor/llama.cpp/", 1)[1]
                tar.extractall(tmp, members=members, filter="data")
            if not _complete(tmp) or not (tmp / "gguf-py" / "gguf").is_dir():
                raise RuntimeError(f"the sdist {sdists[0].name} has no vendor/llama.cpp converters")
            os.rename(tmp, target)
    return target


def _complete(tree: Path) -> bool:
    return (tree / "convert_lora_to_gguf.py").is_file() and (tree / "models" / "templates").is_dir()


def f16_gguf(hf_dir: Path, name: str) -> Path:
    """A Hugging Face folder converted whole to an f16 GGUF by convert_hf_to_gguf.py, cached as NAME.

    For a LoRA GGUF's base: the dequantized folder a run trained on, as llama.cpp loads it, without the
    activation quantization a Q4 GGUF adds (which a 30-step adapter does not always survive)."""
    target = CACHE_DIR / name
    if target.is_file():
        return target
    tree = llama_cpp_dir()
    with _locked(name):
        if not target.is_file():
            tmp = _tmp_name(name)
            env = {k: v for k, v in os.environ.items() if k != "NO_LOCAL_GGUF"}
            env["PYTHONPATH"] = str(tree / "gguf-py")
            _run(f"converting {hf_dir} to {name}",
                 [sys.executable, str(tree / "convert_hf_to_gguf.py"), str(hf_dir), "--outtype", "f16",
                  "--outfile", str(tmp)], env=env)
            os.replace(tmp, target)
    return target
