"""Whether a cluster address answers, and answers as the engine it should be, checked in seconds before any work.

A TCP connection is not enough: an address that answers but is another service (a web UI, an HTTP server) made
Ray retry for minutes and Spark print a Java trace after 80 s. So each engine's port is asked in its own
protocol, in a way that cannot change the cluster:

* Ray (its GCS, and the Ray Client server behind ``ray://``) speaks gRPC, which is HTTP/2: the client's
  connection preface and an empty SETTINGS frame are answered by the server's own SETTINGS frame.
* A Spark master speaks its own RPC framing and writes nothing first; the check is that it does not answer an
  HTTP request as a web server does (its web UI, on 8080 by default, does: the mistake this catches).
"""
from __future__ import annotations

import socket
from typing import Literal

from ..errors import OptionError

Protocol = Literal["grpc", "spark"]

_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])  # + an empty SETTINGS frame
_SETTINGS = 4  # the frame type at byte 3 of a frame header
_HTTP_GET = b"GET / HTTP/1.0\r\n\r\n"
_ADVICE = {"grpc": "Ray's GCS listens on 6379 and its client server on 10001 (ray://); the dashboard, 8265, is a "
                   "web page", "spark": "a Spark master listens on 7077 (spark://host:7077); its web UI, 8080, is a "
                                        "web page"}


def check_address(address: str, hostport: str, default_port: int, what: str, protocol: Protocol,
                  timeout: float = 3.0) -> None:
    """A connection to host:port that answers as `protocol`, or one OptionError naming the address, what was
    tried and what answered."""
    host, _, port = hostport.strip().rpartition(":") if ":" in hostport else (hostport, "", str(default_port))
    host = host or "127.0.0.1"
    tried = f"{host}:{port}"
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            answer = _ask(sock, protocol, timeout)
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        raise OptionError(f"{what} does not answer (tried {tried}: {reason})", option="address",
                          value=address) from None
    wrong = _wrong(answer, protocol)
    if wrong:
        raise OptionError(f"{tried} answers, but not as {what} ({wrong})", option="address", value=address,
                          hint=_ADVICE[protocol])


def _ask(sock: socket.socket, protocol: Protocol, timeout: float) -> bytes | None:
    """What the server says first to our opening (None: nothing within the time, the connection left open)."""
    sock.settimeout(timeout if protocol == "grpc" else min(timeout, 1.0))
    sock.sendall(_H2_PREFACE if protocol == "grpc" else _HTTP_GET)
    got = b""
    try:
        while len(got) < 9:
            chunk = sock.recv(9 - len(got))
            if not chunk:
                break
            got += chunk
    except TimeoutError:
        return got or None
    except OSError:  # reset: a server that refuses what it was sent
        return got
    return got


def _wrong(answer: bytes | None, protocol: Protocol) -> str | None:
    """Why `answer` is not the engine's, or None when it is (or may be)."""
    if protocol == "grpc":
        if answer is not None and len(answer) == 9 and answer[3] == _SETTINGS:
            return None
        if answer and answer.startswith(b"HTTP/"):
            return "it is an HTTP/1 web server, and Ray speaks gRPC"
        return "it did not answer as a gRPC server, which Ray is" if answer else \
            "it did not answer a gRPC greeting, which Ray does"
    if answer and answer.startswith(b"HTTP/"):
        return "it is a web server, and a Spark master is not"
    return None
