"""The llama.cpp servers sftdata starts on 127.0.0.1: llama-cpp-python's (`python -m llama_cpp.server`, which
embeds llama.cpp) and llama.cpp's own `llama-server --jinja`, each on a free port in a process group of its own
that dies with its parent; and the JSON POST that asks them (and any OpenAI-compatible server).

Used by serve-check (sftdata.trainers.serve) and by eval's llama.cpp and server backends.
"""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ..errors import BackendError

_SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _own_group_dies_with_parent() -> None:
    """In the child: a process group of its own (stop reaches the whole server), and SIGTERM when the
    parent dies (Linux), so a killed sftdata or test run leaves no server behind."""
    os.setsid()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class LlamaServer:
    """`python -m llama_cpp.server` on a loopback port: a model GGUF, optionally with a LoRA GGUF."""

    name = "llama_cpp.server"

    def __init__(self, model: Path, log: Path, *, lora: Path | None = None, port: int | None = None,
                 n_ctx: int = 2048, threads: int | None = None, python: str = sys.executable) -> None:
        self.model, self.lora, self.log, self.port, self.n_ctx = Path(model), lora, Path(log), port or free_port(), n_ctx
        self.threads = threads or max(1, min(4, os.cpu_count() or 1))
        self.python = python
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        cmd = [self.python, "-m", "llama_cpp.server", "--model", str(self.model), "--host", "127.0.0.1",
               "--port", str(self.port), "--n_ctx", str(self.n_ctx), "--n_threads", str(self.threads)]
        return cmd + (["--lora_path", str(self.lora)] if self.lora else [])

    def start(self, timeout: float = 180.0) -> LlamaServer:
        """Start and wait until /v1/models answers; BackendError with the log's tail if it never does."""
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                         preexec_fn=_own_group_dies_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise BackendError(f"{self.name} exited with {code}: {self.log_tail()}", file=str(self.model))
            try:
                with urllib.request.urlopen(self.base_url + "/models", timeout=2) as response:
                    if response.status == 200 and json.load(response).get("data"):
                        return self
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.25)
        self.stop()
        raise BackendError(f"{self.name} did not answer within {timeout:g} s: {self.log_tail()}")

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(line for line in text.strip().splitlines()[-lines:] if line.strip())

    def kill(self) -> None:
        """kill -9 of the server's process group, as a crash would."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class LlamaCppServer(LlamaServer):
    """llama.cpp's own `llama-server --jinja` (its own Jinja engine) on a loopback port, for /apply-template."""

    name = "llama-server"

    def __init__(self, binary: Path, model: Path, log: Path, *, lora: Path | None = None,
                 chat_template_file: Path | None = None, threads: int | None = None, n_ctx: int = 2048) -> None:
        super().__init__(model, log, lora=lora, threads=threads, n_ctx=n_ctx)
        self.binary, self.chat_template_file = Path(binary), chat_template_file

    def command(self) -> list[str]:
        cmd = [str(self.binary), "-m", str(self.model), "--host", "127.0.0.1", "--port", str(self.port), "--jinja",
               "-c", str(self.n_ctx), "-t", str(self.threads), "--no-webui"]
        cmd += ["--lora", str(self.lora)] if self.lora else []
        return cmd + (["--chat-template-file", str(self.chat_template_file)] if self.chat_template_file else [])

    def apply_template(self, messages: list[dict[str, Any]]) -> str:
        root = self.base_url.removesuffix("/v1")
        return post_json(root, "/apply-template", {"messages": messages}, note=f"log: {self.log_tail()}")["prompt"]


def check_server_installed() -> None:
    missing = [name for name in _SERVER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise BackendError(f"llama-cpp-python's server is not installed (missing {', '.join(missing)})",
                           hint="pip install 'llama-cpp-python[server]' (on CPUs that lack what the build "
                                "detects, with CMAKE_ARGS=-DGGML_NATIVE=OFF)")


def post_json(base_url: str, path: str, body: dict[str, Any], *, headers: dict[str, str] | None = None,
              timeout: float = 600.0, note: str = "") -> dict[str, Any]:
    """POST a JSON body to an OpenAI-compatible server and return its JSON reply; BackendError otherwise."""
    request = urllib.request.Request(base_url.rstrip("/") + path, data=json.dumps(body).encode("utf-8"),
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        raise BackendError(f"{base_url} answered {error.code} to {path}: "
                           f"{error.read().decode('utf-8', 'replace')[:300]}") from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise BackendError(f"no answer from {base_url} on {path}: {error}" + (f"; {note}" if note else "")) from None
