"""Makes docs/review.png, the README's screenshot: a Korean reasoning conversation in `sftdata review` with its
trained tokens, in the OS's Chromium (tests/support/browser.py) against the real server.

    PYTHONPATH=.:tests python tests/support/review_screenshot.py docs/review.png
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import sftdata
from support.browser import chromium
from support.realmodels import smollm2_tokenizer_dir
from support.review_data import write_chain


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as folder:
        chain = write_chain(Path(folder))
        handle = sftdata.review([chain["kept"]], tokenizer=str(smollm2_tokenizer_dir()), template="chatml_think",
                                reviewer="민지")
        try:
            handle._review.index.join()
            with chromium() as browser:
                page = browser.new_page(viewport={"width": 1200, "height": 900}, device_scale_factor=1)
                page.goto(handle.url + "row/0")
                page.screenshot(path=str(out), full_page=False)
        finally:
            handle.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/review.png"))
