"""A real S3 endpoint on 127.0.0.1 for the s3:// paths: moto's server, spoken to over HTTP by s3fs (through
fsspec) exactly as a cloud bucket is. Its address and throwaway credentials go into the environment when
this module is imported (from conftest), so processes started later, such as Ray's workers, reach it too;
no file under the real home directory is read (AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE point at
nothing), and nothing leaves 127.0.0.1."""
from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator

import pytest


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


PORT = _free_port()
os.environ.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{PORT}", "AWS_ACCESS_KEY_ID": "sftdata-test",
                   "AWS_SECRET_ACCESS_KEY": "sftdata-test", "AWS_DEFAULT_REGION": "us-east-1",
                   "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                   "AWS_EC2_METADATA_DISABLED": "true"})
os.environ["NO_PROXY"] = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1"]))


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=PORT, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{PORT}"
    server.stop()


@pytest.fixture
def bucket(s3_server: str) -> str:
    """A new, empty bucket: its URL, "s3://NAME"."""
    import fsspec

    name = f"sftdata-{uuid.uuid4().hex[:12]}"
    fsspec.filesystem("s3").mkdir(name)
    return f"s3://{name}"
