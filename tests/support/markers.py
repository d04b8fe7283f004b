"""The markers for what a test needs that is heavy and real, given by the fixtures it uses (tests/conftest.py).

Each heavy real part has a marker: ``spark`` (a Spark local session), ``ray`` (a Ray local cluster),
``llama_server`` (llama.cpp: a llama-cpp-python server, or the GGUF converters from its sdist), ``s3`` (moto's
S3 server), ``train`` (a real QLoRA training run). ``slow`` is on every test that has one of them, and on the
few that take long for another reason; ``pytest -m "not slow"`` is the fast loop, CI runs everything.

Where the marks come from, in this order of preference:

* a fixture the test uses, directly or through another fixture (`FIXTURES`: ``item.fixturenames`` holds them all);
* a parameter named like ``engine`` whose value is an engine that starts a cluster (`ENGINES`: ``engine="ray"``
  through ``@pytest.mark.parametrize``, or ``request.param`` of a fixture such as ``engine_name``);
* a mark written on the test (``@pytest.mark.spark``, ``@pytest.mark.slow``) where neither shows it, such as a
  test that starts Spark or trains in its own body.

`guard` makes a test that is not marked slow fail, naming the marker, where it starts Ray or Spark, a
llama.cpp server or a training run in this process anyway: a new heavy test cannot sit in the fast loop.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

import pytest

HEAVY = ("spark", "ray", "llama_server", "s3", "train")  # registered, with what each means, in pyproject.toml
SLOW = "slow"

# fixture name -> the heavy part it starts (or needs started)
FIXTURES = {
    "llama_server": "llama_server",  # tests/support/llama_server.py: the session's server
    "own_llama_server": "llama_server",  # a server of the test's own
    "server_installed": "llama_server",  # test_export_gguf.py: llama-cpp-python[server], for the tests that serve
    "converters": "llama_server",  # test_export_gguf.py: llama.cpp's converters (tests/support/converters.py)
    "s3_server": "s3",  # tests/support/s3_server.py
    "bucket": "s3",
    "ray_cluster": "ray",  # test_scale.py
    "identity_run": "train",  # tests/support/identity_run.py: the session's training run
    "reasoning_run": "train",  # test_reasoning_run.py
    "alpaca_run": "train",  # test_export_gguf.py
}

# a parameter whose name holds "engine" and whose value is one of these runs on that engine ("local" runs here)
ENGINES = ("ray", "spark")

# what starts a heavy part in this process: module, attribute path, the marker it needs
ENTRY_POINTS = (
    ("sftdata.scale.engines", "_ray", "ray"),
    ("sftdata.scale.engines", "_spark_session", "spark"),
    ("sftdata.trainers.serve", "LlamaServer.start", "llama_server"),
    ("sftdata.trainers.qlora", "build_trainer", "train"),
)


def heavy_parts(fixtures: Iterable[str], params: dict[str, Any]) -> set[str]:
    """The heavy markers a test's fixtures and parameters call for."""
    parts = {FIXTURES[name] for name in fixtures if name in FIXTURES}
    parts |= {value for name, value in params.items()
              if "engine" in name and isinstance(value, str) and value in ENGINES}
    return parts


def _params(item: pytest.Item) -> dict[str, Any]:
    callspec = getattr(item, "callspec", None)
    return dict(callspec.params) if callspec is not None else {}


def apply(items: Iterable[pytest.Item]) -> None:
    """Mark each item with the heavy parts its fixtures and parameters call for, and with `slow` where it has any."""
    for item in items:
        have = {mark.name for mark in item.iter_markers()}
        parts = heavy_parts(getattr(item, "fixturenames", ()), _params(item))
        for name in sorted(parts - have):
            item.add_marker(name)
        if (parts | have) & set(HEAVY) and SLOW not in have:
            item.add_marker(SLOW)


def describe(item: pytest.Item) -> dict[str, Any]:
    """What `leaks` reads of an item, as JSON (the marker report a pytest subprocess writes)."""
    return {"nodeid": item.nodeid, "fixtures": sorted(getattr(item, "fixturenames", ())),
            "params": {k: v for k, v in _params(item).items() if isinstance(v, str)},
            "markers": sorted({mark.name for mark in item.iter_markers()})}


def leaks(selected: Iterable[dict[str, Any]]) -> list[str]:
    """The items of a fast selection that need a heavy part or are marked as heavy, each with why."""
    found = []
    for entry in selected:
        why = sorted(heavy_parts(entry["fixtures"], entry["params"]) | (set(entry["markers"]) & {*HEAVY, SLOW}))
        if why:
            found.append(f"{entry['nodeid']}: {', '.join(why)}")
    return found


def _refusal(where: str, marker: str):
    fixtures = ", ".join(sorted(name for name, part in FIXTURES.items() if part == marker)) or "none yet"

    def refuse(*args: Any, **kwargs: Any) -> Any:  # test_markers.py knows it by its heavy_part
        pytest.fail(f"this test is not marked slow, yet it calls {where}, which needs the `{marker}` marker: use a "
                    f"fixture that provides it ({fixtures}) or mark the test @pytest.mark.{marker} "
                    "(tests/support/markers.py)", pytrace=False)

    refuse.heavy_part = marker  # type: ignore[attr-defined]
    return refuse


def guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace every entry point of a heavy part with one that fails the test (for tests not marked slow).
    An entry point that is gone is left alone here; test_markers.py calls each one, so a rename fails there."""
    for module_name, path, marker in ENTRY_POINTS:
        try:
            target: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        *owners, attribute = path.split(".")
        for owner in owners:
            target = getattr(target, owner, None)
        if target is not None and hasattr(target, attribute):
            monkeypatch.setattr(target, attribute, _refusal(f"{module_name}.{path}", marker))
