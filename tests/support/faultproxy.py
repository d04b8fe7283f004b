"""A fault-injecting HTTP proxy on 127.0.0.1 for the synth tests (stdlib only).

It forwards requests to a real upstream server (the llama.cpp server) and, on a schedule keyed by
the number of the chat-completion request (0, 1, 2, ...), answers instead with an error status and
headers (429 with Retry-After, 500, 401), stalls (holds the request, then drops the connection),
or a canned chat completion. Every request is logged in memory with its arrival time and outcome;
nothing is written to disk, and the Authorization header is never recorded.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Error:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=lambda: {"error": {"message": "injected", "type": "injected"}})


@dataclass(frozen=True)
class Stall:
    seconds: float  # hold the request this long, then close the connection without an answer


@dataclass(frozen=True)
class Canned:
    content: str  # answer with a chat completion holding this text
    delay: float = 0.0  # after this many seconds


Action = Error | Stall | Canned | None  # None: forward to the upstream


@dataclass
class Entry:
    number: int  # chat-completion request number, -1 for other paths
    path: str
    arrived: float  # time.monotonic()
    outcome: str
    body: dict[str, Any] | None = None  # the request JSON (messages, response_format, ...)
    auth_sha256: str | None = None  # SHA-256 of the Authorization header: proves a key was sent, never holds it


class FaultProxy:
    def __init__(self, upstream: str, schedule: dict[int, Action] | Callable[[int], Action] | None = None) -> None:
        parts = urlsplit(upstream)
        self.host, self.port_up = parts.hostname or "127.0.0.1", parts.port or 80
        self.schedule = schedule or {}
        self.log: list[Entry] = []
        self._lock = threading.Lock()
        self._count = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                proxy._handle(self, None)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                proxy._handle(self, self.rfile.read(length))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _action(self, number: int) -> Action:
        if callable(self.schedule):
            return self.schedule(number)
        return self.schedule.get(number)

    def completions(self) -> list[Entry]:
        with self._lock:
            return [e for e in self.log if e.number >= 0]

    def _handle(self, handler: BaseHTTPRequestHandler, body: bytes | None) -> None:
        arrived = time.monotonic()
        is_chat = handler.command == "POST" and handler.path.rstrip("/").endswith("/chat/completions")
        with self._lock:
            number = self._count if is_chat else -1
            if is_chat:
                self._count += 1
        try:
            request_json = json.loads(body) if body else None
        except ValueError:
            request_json = None
        action = self._action(number) if is_chat else None
        auth = handler.headers.get("Authorization")
        entry = Entry(number, handler.path, arrived, "forwarded", request_json,
                      hashlib.sha256(auth.encode()).hexdigest() if auth else None)
        with self._lock:
            self.log.append(entry)
        if isinstance(action, Error):
            entry.outcome = f"error {action.status}"
            self._send(handler, action.status, json.dumps(action.body).encode(), action.headers)
        elif isinstance(action, Stall):
            entry.outcome = "stall"
            time.sleep(action.seconds)
            handler.close_connection = True
        elif isinstance(action, Canned):
            entry.outcome = "canned"
            time.sleep(action.delay)
            reply = {"id": f"chatcmpl-canned-{number}", "object": "chat.completion", "created": int(time.time()),
                     "model": "canned", "choices": [{"index": 0, "finish_reason": "stop",
                                                     "message": {"role": "assistant", "content": action.content}}],
                     "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}}
            self._send(handler, 200, json.dumps(reply).encode(), {})
        else:
            self._forward(handler, body, entry)

    def _forward(self, handler: BaseHTTPRequestHandler, body: bytes | None, entry: Entry) -> None:
        headers = {k: v for k, v in handler.headers.items() if k.lower() in ("content-type", "authorization", "accept")}
        try:
            conn = http.client.HTTPConnection(self.host, self.port_up, timeout=600)
            conn.request(handler.command, handler.path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            status, ctype = response.status, response.getheader("Content-Type", "application/json")
            conn.close()
        except OSError as error:
            entry.outcome = f"upstream down: {type(error).__name__}"
            self._send(handler, 502, b'{"error": {"message": "upstream unavailable"}}', {})
            return
        entry.outcome = f"forwarded {status}"
        self._send(handler, status, data, {"Content-Type": ctype})

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, data: bytes, headers: dict[str, str]) -> None:
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:  # the client gave up (timeout) meanwhile
            handler.close_connection = True
