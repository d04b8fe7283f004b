"""A real OpenAI-compatible server for the synth tests: llama-cpp-python's, with SmolLM2-135M-Instruct.

`.ci/run` installs ``llama-cpp-python[server]`` (pinned below) before pytest, built with
``CMAKE_ARGS="-DGGML_NATIVE=OFF"``: the default native build compiles for instructions these
virtual CPUs advertise but cannot run, and the server segfaults on the first prompt longer than one
token. When the package is missing (a dev venv), `ensure_installed` builds it the same way, once,
into a wheel cache folder named after the flags (pip's own wheel cache does not key on CMAKE_ARGS).

The server answers one request at a time; all traffic stays on 127.0.0.1.
"""
from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

from sftdata.trainers.llamaservers import LlamaServer as _LibraryServer

LLAMA_CPP_VERSION = "0.3.36"
CMAKE_ARGS = "-DGGML_NATIVE=OFF"
WHEEL_DIR = Path(os.environ.get("SFTDATA_WHEEL_CACHE") or "~/.cache/sftdata-ci").expanduser() / "wheels-ggml-native-off"


def _importable() -> bool:
    probe = "import llama_cpp, llama_cpp.server.app, uvicorn, sse_starlette; print(llama_cpp.__version__)"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    return proc.returncode == 0 and proc.stdout.strip() == LLAMA_CPP_VERSION


def ensure_installed() -> None:
    """Install llama-cpp-python[server] into this interpreter's environment if it is missing."""
    if _importable():
        return
    WHEEL_DIR.mkdir(parents=True, exist_ok=True)
    with open(WHEEL_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        env = dict(os.environ, CMAKE_ARGS=CMAKE_ARGS)
        pip = [sys.executable, "-m", "pip"]
        if not list(WHEEL_DIR.glob(f"llama_cpp_python-{LLAMA_CPP_VERSION}-*.whl")):
            _run(pip + ["wheel", "--no-deps", "--no-cache-dir", "-w", str(WHEEL_DIR),
                        f"llama-cpp-python=={LLAMA_CPP_VERSION}"], env, 3600)
        _run(pip + ["install", "--find-links", str(WHEEL_DIR), f"llama-cpp-python[server]=={LLAMA_CPP_VERSION}"],
             env, 1800)
    if not _importable():
        raise RuntimeError("llama-cpp-python[server] is still not importable after installing it")


def _run(cmd: list[str], env: dict[str, str], timeout: int) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{tail}")


class LlamaServer(_LibraryServer):
    """sftdata's own launcher (sftdata.trainers.llamaservers, used by `serve-check`), one thread by default:
    `python -m llama_cpp.server` on a loopback port; start, stop, kill -9 and restart (start again)."""

    def __init__(self, model: Path, log: Path, port: int | None = None, n_ctx: int = 2048, threads: int = 1) -> None:
        super().__init__(model, log, port=port, n_ctx=n_ctx, threads=threads)


import pytest  # noqa: E402  (the helpers above are usable without pytest, e.g. from bench/)


@pytest.fixture(scope="session")
def llama_server(smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory):
    """One llama-cpp-python server for the session, serving SmolLM2-135M-Instruct."""
    ensure_installed()
    server = LlamaServer(smollm2_gguf, tmp_path_factory.mktemp("llama-server") / "server.log").start()
    yield server
    server.stop()


@pytest.fixture
def own_llama_server(smollm2_gguf: Path, tmp_path: Path):
    """A server of the test's own, for tests that kill and restart it."""
    ensure_installed()
    server = LlamaServer(smollm2_gguf, tmp_path / "own-server.log")
    yield server
    server.stop()
