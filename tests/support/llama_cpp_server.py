"""llama.cpp's own server (`llama-server`), built once from the sources the llama-cpp-python sdist vendors.

The same sdist as tests/support/converters.py (the version llama_server.py installs) carries llama.cpp's whole
source under ``vendor/llama.cpp``. Only the ``llama-server`` target is built, with ``GGML_NATIVE=OFF`` (the
native build compiles for instructions these virtual CPUs advertise but cannot run) and ``-j2``, into
``$SFTDATA_WHEEL_CACHE/llama-server-<version>-ggml-native-off/llama-server`` (default ~/.cache/sftdata-ci, beside
the llama-cpp-python wheel; temp name + rename, under a lock). `.ci/run` builds it before pytest; a dev machine
builds it on first use. Nothing of it is copied into the repository.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from .llama_server import LLAMA_CPP_VERSION

CACHE = Path(os.environ.get("SFTDATA_WHEEL_CACHE") or "~/.cache/sftdata-ci").expanduser()
TARGET = CACHE / f"llama-server-{LLAMA_CPP_VERSION}-ggml-native-off"
CMAKE_FLAGS = ["-DGGML_NATIVE=OFF", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
               "-DLLAMA_BUILD_SERVER=ON", "-DBUILD_SHARED_LIBS=OFF", "-DCMAKE_BUILD_TYPE=Release"]


def llama_server_binary() -> Path:
    """The built llama-server executable (building it once, ~10-20 min on 2 cores)."""
    binary = TARGET / "llama-server"
    if binary.is_file():
        return binary
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{TARGET.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.is_file():
            return binary
        with tempfile.TemporaryDirectory(dir=CACHE, prefix=f".{TARGET.name}.tmp-") as work:
            source = _unpack_sources(Path(work))
            build = Path(work) / "build"
            _run(["cmake", "-S", str(source), "-B", str(build), *CMAKE_FLAGS], 1800)
            _run(["cmake", "--build", str(build), "--target", "llama-server", "-j", "2"], 7200)
            built = next(build.rglob("llama-server"), None)
            if built is None or not built.is_file():
                raise RuntimeError(f"cmake built no llama-server under {build}")
            staging = Path(work) / "out"
            staging.mkdir()
            shutil.copy2(built, staging / "llama-server")
            os.rename(staging, TARGET)
    return binary


def _unpack_sources(work: Path) -> Path:
    _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--no-cache-dir", "--dest",
          str(work / "dl"), f"llama-cpp-python=={LLAMA_CPP_VERSION}"], 1800)
    [sdist] = list((work / "dl").glob("llama_cpp_python-*.tar.gz"))
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if "/vendor/llama.cpp/" in m.name and (m.isfile() or m.isdir())]
        for member in members:
            member.name = member.name.split("/vendor/", 1)[1]
        tar.extractall(work / "src", members=members, filter="data")
    return work / "src" / "llama.cpp"


def _run(cmd: list[str], timeout: int) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{tail}")


if __name__ == "__main__":  # .ci/run: build it before the tests
    print(llama_server_binary())
else:
    import pytest

    @pytest.fixture(scope="session", name="llama_server_binary")
    def llama_server_binary_fixture() -> Path:
        """llama.cpp's llama-server executable (built once)."""
        return llama_server_binary()
