"""The review server: uvicorn serving the app on a socket bound here (so `--port 0` gets a free port and the URL
is known before the first request), in a background thread; `ReviewServer` is the handle a notebook gets."""
from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import OptionError, option
from .session import Options, Review

LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass(slots=True)
class ReviewServer:
    """A running review: its `url` (with the token), where decisions go, and `stop()`."""

    url: str
    review_file: str
    rows_indexed_at_start: int
    tokenizer_seconds: float
    notes: list[str] = field(default_factory=list)
    _server: object | None = None
    _thread: threading.Thread | None = None
    _review: Review | None = None

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True  # type: ignore[attr-defined]
        if self._thread is not None:
            self._thread.join(10)

    def wait(self) -> None:
        """Until the server stops (the CLI waits here until Ctrl-C)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def as_dict(self) -> dict[str, object]:
        return {"url": self.url, "review_file": self.review_file, "tokenizer_seconds": round(self.tokenizer_seconds, 3),
                "notes": self.notes}

    def __repr__(self) -> str:
        return f"ReviewServer(url={self.url!r}, review_file={self.review_file!r})"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def start(paths: Sequence[str | os.PathLike[str]], options: Options, host: str = "127.0.0.1",
          port: int = 0) -> ReviewServer:
    import uvicorn

    from .app import build_app

    if not 0 <= port <= 65535:
        raise OptionError("must be 0 (a free port) to 65535", option="port", value=port)
    review = Review(paths, options)
    token = secrets.token_urlsafe(24)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise OptionError(f"cannot listen on {host}:{port}: {error.strerror}", option="port", value=port,
                          hint=f"pass {option('port', 0)} for a free port") from None
    sock.listen(128)
    sock.set_inheritable(True)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}/{token}/"
    review.start()
    config = uvicorn.Config(build_app(review, token), log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="sftdata-review-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    notes = list(review.timings.notes)
    if not is_loopback(host):
        notes.append(f"listening on {host}, beyond this machine: anyone who can reach it needs the token in the URL "
                     "(it is the password of this review; share it only with reviewers)")
    return ReviewServer(url, str(review.path), len(review.index), review.timings.tokenizer_s, notes, server, thread,
                        review)
