"""The atheris harness (fuzz/fuzz_readers.py) without atheris: its seeds and hypothesis-generated
inputs go through the same one-input function, so the harness cannot rot and its checks run in CI."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

HARNESS = Path(__file__).resolve().parents[1] / "fuzz" / "fuzz_readers.py"


def _load():
    spec = importlib.util.spec_from_file_location("fuzz_readers", HARNESS)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


harness = _load()


@pytest.mark.parametrize("seed", range(len(harness.SEEDS)))
def test_every_seed_passes_the_harness(seed):
    harness.one_input(harness.SEEDS[seed])


def test_the_harness_catches_a_broken_invariant(monkeypatch):
    """It must be able to fail: counts that stop balancing are reported as a crash."""
    import sftdata.items

    monkeypatch.setattr(sftdata.items.Counts, "balanced", lambda self: False)
    with pytest.raises(AssertionError):
        harness.one_input(harness.SEEDS[0])


_LINE = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b'{"instruction": "hi", "output": "there"}', b'{"instruction": 1}', b"[", b"\xff\xfe",
                     b'{"messages": [{"role": "user", "content": ""}]}', b"instruction,output", b"a,b,c",
                     b'{"question": "q", "answer": "a", "context": null}', "질문,답".encode("cp949")]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.integers(0, 255), choice=st.integers(0, 255), lines=st.lists(_LINE, max_size=6),
       ending=st.sampled_from([b"\n", b"\r\n", b"\r"]))
def test_generated_files_pass_the_harness(kind, choice, lines, ending):
    harness.one_input(bytes([kind, choice]) + ending.join(lines))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(row=st.sampled_from([b'{"a": {"b": [{"c": "x", "d": "y"}]}}', b'{"a": 1}', b'{"a": {"b": []}}']),
       mapping=st.one_of(st.binary(max_size=60), st.sampled_from([
           b"to: qa\nfields:\n  question: a.b[0].c\n  answer: a.b[0].d\n",
           b"to: instruction\nexplode: a.b\nfields:\n  instruction: item.c\n  output: {join: [item.c, item.d]}\n",
           b"to: chat\nmessages: {path: a.b}\n", b"to: [\n", b"!!python/name:os.system\n"])))
def test_generated_mappings_pass_the_harness(row, mapping):
    harness.one_input(b"\x00\x00" + row + b"\n" + harness.MAPPING_MARK + mapping)
