"""Coverage-guided fuzzing of the readers and the mapping with atheris (docs/reliability.md).

    pip install -e '.[fuzz]'
    python fuzz/fuzz_readers.py -atheris_runs=20000          # a short run from the built-in seeds
    python fuzz/fuzz_readers.py -max_total_time=600 corpus/  # longer, keeping what it finds in corpus/

Each input is one data file plus, optionally, a mapping: byte 0 picks the file type, byte 1 the
encoding and the preset, and the rest is the file; a ``\\0MAP\\0`` marker splits off a mapping
(YAML) from the end. The input goes through `sftdata.convert` (readers, the columnar fast path, the
mapping, the record models, the writers) and `sftdata.validate`. SftDataError for a file or mapping
that is unusable as a whole is the expected answer; any other exception, or counts that do not
balance (read = written + rejected), or a written line that is not JSON, is a bug and a crash.

`one_input` needs no atheris, so tests/test_fuzz_harness.py runs it on the seeds and on
hypothesis-generated inputs in the ordinary test run.
"""
from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from pathlib import Path

FORMATS = (".jsonl", ".json", ".csv", ".tsv", ".jsonl", ".json")
ENCODINGS = ("auto", "utf-8", "cp949")
PRESETS = (None, "alpaca", "sharegpt", "openai", "qa", None)
MAPPING_MARK = b"\0MAP\0"

SEEDS: list[bytes] = [
    b"\x00\x00" + b'{"instruction": "hi", "output": "there"}\n{"instruction": "a", "out\n',
    b"\x01\x01" + b'[{"instruction": "hi", "input": "", "output": "x"}, 3, null]',
    b"\x02\x00" + b'instruction,output\r\nhi,there\r\n"multi\nline",x\r\nonly\r\n',
    b"\x03\x00" + b"instruction\toutput\nhi\tthere\n",
    b"\x00\x02" + b'{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}\n',
    b"\x00\x03" + b'{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n',
    b"\x00\x05" + b'{"doc": {"qa": [{"q": "x", "a": "y"}]}}\n' + MAPPING_MARK
    + b"to: qa\nexplode: doc.qa\nas: p\nfields:\n  question: p.q\n  answer: p.a\n",
    b"\x02\x04" + "instruction,output\n안녕,반가워\n".encode("cp949"),
    b"\x00\x00" + b"\xef\xbb\xbf" + b'{"instruction": "\xff", "output": "\x00"}\r\n' + b"[" * 200 + b"\n",
]

_WORK: Path | None = None


def _work() -> Path:
    global _WORK
    if _WORK is None:
        _WORK = Path(tempfile.mkdtemp(prefix="sftdata-fuzz-"))
        atexit.register(shutil.rmtree, _WORK, ignore_errors=True)
    return _WORK


def one_input(data: bytes) -> None:
    """Run one fuzz input through convert and validate; raise on anything but a clear SftDataError."""
    import orjson

    from sftdata import SftDataError, convert, validate

    if len(data) < 2:
        return
    kind, choice, body = data[0], data[1], data[2:]
    mapping_text = None
    if MAPPING_MARK in body:
        body, _, mapping_text = body.partition(MAPPING_MARK)
    work = _work()
    source = work / ("in" + FORMATS[kind % len(FORMATS)])
    for old in work.iterdir():
        old.unlink()
    source.write_bytes(body)
    mapping = None
    if mapping_text is not None:
        mapping = work / "map.yaml"
        mapping.write_bytes(mapping_text)
    preset = None if mapping else PRESETS[choice % len(PRESETS)]
    out = work / "out.jsonl"
    try:
        result = convert([source], out, preset=preset, mapping=mapping, encoding=ENCODINGS[(choice >> 4) % 3])
    except SftDataError as error:
        assert str(error), "an error without a message"
        assert not out.exists(), "an error left an output under the final name"
        return
    summary = result.summary()
    assert result.counts.balanced(), summary
    lines = out.read_bytes().splitlines()
    assert len(lines) == summary["written"], summary
    for line in lines:
        orjson.loads(line)
    rejects = out.with_name("out.rejects.jsonl").read_bytes().splitlines()
    assert len(rejects) == summary["rejected"], summary
    for line in rejects:
        reject = orjson.loads(line)
        assert reject["file"] and reject["reason"] and reject["message"], reject
    if lines:  # what convert wrote must read back as valid records
        checked = validate([out]).summary()
        assert checked["rejected"] == 0 and checked["written"] == len(lines), checked


def main() -> None:
    import atheris

    with atheris.instrument_imports():
        import orjson  # noqa: F401

        import sftdata
        import sftdata.ingest.mapping
        import sftdata.ingest.readers
        import sftdata.rendering.columnar  # noqa: F401

    args = list(sys.argv)
    if not any(not a.startswith("-") for a in args[1:]):  # no corpus folder: start from the seeds
        seeds = _work().parent / f"{_work().name}-seeds"
        seeds.mkdir()
        atexit.register(shutil.rmtree, seeds, ignore_errors=True)
        for n, seed in enumerate(SEEDS):
            (seeds / f"seed-{n}").write_bytes(seed)
        args.append(str(seeds))
    atheris.Setup(args, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
