"""A real browser for the tests of pages: the OS's Chromium (Debian's `chromium` package, which .ci/run installs)
driven by Playwright, never a browser Playwright downloads (`playwright install` is not run)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched Chromium (a Playwright Browser)."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():
        raise RuntimeError(f"{CHROMIUM} is absent: install Debian's chromium (apt-get install -y chromium; .ci/run does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def serve_review(paths: list[Path], *options: str) -> tuple[subprocess.Popen, str]:
    """`sftdata review PATHS --no-open --json --port 0 OPTIONS` in a process of its own, and the URL it printed."""
    process = subprocess.Popen([sys.executable, "-m", "sftdata.cli", "review", *map(str, paths), "--no-open", "--json",
                                "--port", "0", *options], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    line = process.stdout.readline()
    if not line:
        process.wait(10)
        raise AssertionError(process.stderr.read())
    return process, json.loads(line)["url"]
