"""The fast loop (`pytest -m "not slow"`) holds no test that needs a heavy real part: the markers are set from the
fixtures and engine parameters a test uses (tests/support/markers.py, tests/conftest.py), the check below finds a
heavy test left unmarked, and a fast test that starts Ray, Spark, llama.cpp or training in its own body fails."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from support import markers

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]

SYNTHETIC = """
import pytest

def test_light():
    pass

def test_served(llama_server):
    pass

def test_in_a_bucket(bucket):
    pass

def test_served_through_another_fixture(answers):
    pass

@pytest.mark.parametrize("engine", ["local", "ray", "spark"])
def test_on_an_engine(engine):
    pass

@pytest.mark.parametrize("template", ["ray"])
def test_a_value_like_an_engine_elsewhere(template):
    pass

@pytest.fixture(params=["local", "ray"])
def engine_name(request):
    return request.param

def test_on_an_indirect_engine(engine_name):
    pass

@pytest.mark.train
def test_trains_in_its_body():
    pass
"""

FIXTURES = """
import pytest

@pytest.fixture
def llama_server():
    return "a server"

@pytest.fixture
def bucket():
    return "s3://bucket"

@pytest.fixture
def answers(llama_server):
    return [llama_server]
"""

RULES = """
from support import markers

@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    markers.apply(items)
"""

FAST = ["test_synthetic.py::test_light", "test_synthetic.py::test_on_an_engine[local]",
        "test_synthetic.py::test_a_value_like_an_engine_elsewhere[ray]",
        "test_synthetic.py::test_on_an_indirect_engine[local]"]


def _fast_selection(pytester: pytest.Pytester, pytestconfig: pytest.Config, rules: bool) -> list[dict]:
    pytester.makeini("[pytest]\nmarkers =\n" + "".join(f"    {line}\n" for line in pytestconfig.getini("markers")))
    pytester.makeconftest(FIXTURES + (RULES if rules else ""))
    pytester.makepyfile(test_synthetic=SYNTHETIC)
    recorded = pytester.inline_run("--collect-only", "-m", "not slow", "--strict-markers", "-p", "no:cacheprovider")
    [finish] = recorded.getcalls("pytest_collection_finish")
    return [markers.describe(item) for item in finish.session.items]


def test_the_check_finds_heavy_tests_left_unmarked(pytester, pytestconfig):
    """Without the rules, the tests that use a heavy fixture (directly or through another one), run on Ray or
    Spark, or carry a heavy mark sit in the fast selection, and `leaks` names each with its part."""
    selected = _fast_selection(pytester, pytestconfig, rules=False)
    found = markers.leaks(selected)
    assert found == [
        "test_synthetic.py::test_served: llama_server",
        "test_synthetic.py::test_in_a_bucket: s3",
        "test_synthetic.py::test_served_through_another_fixture: llama_server",
        "test_synthetic.py::test_on_an_engine[ray]: ray",
        "test_synthetic.py::test_on_an_engine[spark]: spark",
        "test_synthetic.py::test_on_an_indirect_engine[ray]: ray",
        "test_synthetic.py::test_trains_in_its_body: train",
    ]


def test_the_rules_mark_them_and_the_fast_loop_leaves_them_out(pytester, pytestconfig):
    selected = _fast_selection(pytester, pytestconfig, rules=True)
    assert [entry["nodeid"] for entry in selected] == FAST
    assert markers.leaks(selected) == []


def test_no_test_in_this_run_needs_a_heavy_part_unmarked(request):
    """Every test of this session that is not marked slow (under -m "not slow": the whole fast loop) uses no heavy
    fixture (llama_server, s3_server, bucket, ray_cluster, identity_run, ...), runs on no Ray or Spark engine
    parameter and carries no heavy mark."""
    fast = [markers.describe(item) for item in request.session.items if item.get_closest_marker(markers.SLOW) is None]
    assert fast and markers.leaks(fast) == []


@pytest.mark.slow  # collects the whole suite in a subprocess: ~20 s of imports
def test_the_fast_loop_command_selects_no_heavy_test_and_every_rule_still_applies(tmp_path):
    """`pytest -m "not slow"` itself, over the whole suite (whatever this run selected): no heavy test is kept; and
    every rule of tests/support/markers.py still names something (a renamed fixture or test would leave its tests
    unmarked, silently)."""
    report = tmp_path / "fast.json"
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "not slow", "-p",
                           "no:cacheprovider", "--continue-on-collection-errors", "--marker-report", str(report),
                           "tests"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert report.is_file(), (done.stdout + done.stderr)[-3000:]
    collected = json.loads(report.read_text(encoding="utf-8"))
    selected, deselected = collected["selected"], collected["deselected"]
    assert markers.leaks(selected) == []
    assert len(selected) > 500 and any(e["nodeid"].startswith("tests/test_markers.py::") for e in selected)
    assert all("slow" in e["markers"] for e in deselected) and len(deselected) > 50
    used = {name for entry in selected + deselected for name in entry["fixtures"]}
    assert set(markers.FIXTURES) <= used, f"no test uses {sorted(set(markers.FIXTURES) - used)}: a stale rule"
    for (file, function), rules in markers.SLOW_CASES.items():
        cases = [e["params"] for e in deselected if (e["file"], e["function"]) == (file, function)]
        for rule in rules:
            assert any(markers.matches(rule, params) for params in cases), f"{file}::{function} has no case {rule}"


@pytest.mark.parametrize(("module", "path", "marker"), markers.ENTRY_POINTS,
                         ids=[f"{m}.{p}" for m, p, _ in markers.ENTRY_POINTS])
def test_a_fast_test_that_starts_a_heavy_part_fails_naming_the_marker(module, path, marker):
    """This test is not marked slow, so each entry point of a heavy part fails it (tests/conftest.py's guard);
    one renamed away fails here too, instead of leaving the guard silently off."""
    import importlib

    target = importlib.import_module(module)
    for attribute in path.split("."):
        target = getattr(target, attribute)
    assert getattr(target, "heavy_part", None) == marker, f"the guard left {module}.{path} alone"  # never run it
    with pytest.raises(pytest.fail.Exception, match=rf"needs the `{marker}` marker.*@pytest\.mark\.{marker}"):
        target(None)
