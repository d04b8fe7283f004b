"""A wrong engine address or output is one line, in seconds, before any engine starts: never a Ray or Java
traceback, never a cluster started only to refuse the output (exit 2, the option named by its flag)."""
from __future__ import annotations

import http.server
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

RECORDS = '{"instruction": "한국의 수도는?", "output": "서울입니다."}\n'


def _run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    data = tmp_path / "records.jsonl"
    data.write_text(RECORDS, encoding="utf-8")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "sftdata.cli", *[a.replace("DATA", str(data)) for a in args]],
                          capture_output=True, text=True, timeout=120, env={"RAY_TMPDIR": str(tmp_path / "ray"),
                                                                             "PATH": "/usr/bin:/bin"})
    return done, time.monotonic() - started


@pytest.mark.parametrize(("backend", "address", "said"), [  # "backend": these start no engine (markers.py)
    ("ray", "ray://127.0.0.1:1", "--address ray://127.0.0.1:1: the Ray Client server does not answer"),
    ("ray", "127.0.0.1:1", "--address 127.0.0.1:1: the Ray cluster's GCS does not answer"),
    ("ray", "auto", "--address auto: no Ray cluster is running on this machine"),
    ("spark", "spark://127.0.0.1:1", "--address spark://127.0.0.1:1: the Spark master does not answer"),
])
def test_an_address_that_does_not_answer_is_one_line_in_seconds(tmp_path, backend, address, said):
    done, seconds = _run(tmp_path, "render", "DATA", "-o", str(tmp_path / "parts"), "--eos", "</s>",
                         "--engine", backend, "--address", address)
    assert done.returncode == 2, done.stderr
    assert said in done.stderr and "Traceback" not in done.stderr and "internal error" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert seconds < 30 and not (tmp_path / "parts").exists()


@pytest.fixture
def web_server():
    """An address that answers, but as an HTTP server (a web UI given for the cluster's port)."""

    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"a web page")

        def log_message(self, *args):
            pass

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Quiet) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield f"127.0.0.1:{server.server_address[1]}"
        server.shutdown()


@pytest.mark.parametrize(("backend", "scheme", "said"), [
    ("ray", "ray://", "but not as the Ray Client server"),
    ("ray", "", "but not as the Ray cluster's GCS"),
    ("spark", "spark://", "but not as the Spark master (it is a web server, and a Spark master is not)"),
])
def test_an_address_that_answers_as_another_service_is_one_line_in_seconds(tmp_path, web_server, backend, scheme,
                                                                           said):
    """A port that answers but is not the engine (Ray retried for minutes; Spark printed 58 lines of Java after
    80 s): the engine's own protocol is asked first."""
    address = scheme + web_server
    done, seconds = _run(tmp_path, "render", "DATA", "-o", str(tmp_path / "parts"), "--eos", "</s>",
                         "--engine", backend, "--address", address)
    assert done.returncode == 2, done.stderr
    assert f"--address {address}: {web_server} answers, {said}" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr
    assert seconds < 30 and not (tmp_path / "parts").exists() and not (tmp_path / "ray").exists()


@pytest.mark.parametrize("command", [["dedup"], ["render", "--eos", "</s>"]])
def test_an_output_that_is_a_file_is_refused_before_an_engine_starts(tmp_path, command):
    existing = tmp_path / "existing.jsonl"
    existing.write_text("kept\n", encoding="utf-8")
    done, seconds = _run(tmp_path, command[0], "DATA", "-o", str(existing), *command[1:], "--engine", "ray")
    assert done.returncode == 2 and "this is a file" in done.stderr, done.stderr
    assert not (tmp_path / "ray").exists()  # no Ray session was started (it writes its temp folder first)
    assert existing.read_text(encoding="utf-8") == "kept\n"
