"""One hostile records file through every command that reads records (test_hostile.py covers
`convert` and its raw formats in depth): no traceback, every bad line named by file, line and
reason, read = written + rejected + filtered + deduplicated, and every good row still comes out,
control characters and RTL marks intact."""
from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from support.peak_rss import run_measured

RTL = {"id": "g5", "instruction": "control \x07\x1b[31m chars and RTL \u202eevil\u202c \u200f", "input": "",
       "output": "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627"}
TURNS = [m for i in range(500) for m in ({"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"})]
LINES: list[tuple[bytes, str | None]] = [  # (line, reason it is rejected or None if good)
    (b"\xef\xbb\xbf" + orjson.dumps({"id": "g1", "instruction": "first row after a BOM", "output": "fine"}), None),
    (orjson.dumps({"id": "g2", "instruction": "a CRLF line", "output": "ok"}) + b"\r", None),
    (b'{"instruction": "truncated", "out', "invalid_json"),
    (b'{"instruction": "bad \xff\xfe utf8", "output": "x"}', "undecodable"),
    (b'{"instruction": "raw nul \x00 byte", "output": "x"}', "invalid_json"),
    (orjson.dumps({"instruction": 42, "output": "a number where a string belongs"}), "string_type"),
    (orjson.dumps({"instruction": "null output", "output": None}), "string_type"),
    (orjson.dumps({"id": "g3", "instruction": "unknown fields are kept", "output": "yes", "meta": {"x": 1}}), None),
    (b"[" * 10_000 + b"]" * 10_000, "too_deep"),
    (orjson.dumps({"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]}),
     "chat_rule"),
    (orjson.dumps({"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "a"}]}),
     "chat_rule"),
    (orjson.dumps({"id": "g4", "messages": TURNS}), None),  # 1,000 turns
    (orjson.dumps(RTL), None),
    (orjson.dumps({"id": "g5", "instruction": "the same id again, other text", "output": "still fine"}), None),
    (orjson.dumps({"id": "g6", "instruction": "mojibake Ã¬â€¢Ë†Ã«â€¦â€¢", "output": "ì•ˆë…•"}), None),
    (orjson.dumps({"id": "g7", "question": "a QA row?", "answer": "yes"}), None),
    (b"", None),  # blank: not a row
    (orjson.dumps("just a string"), "not_an_object"),
]
BAD = {n: reason for n, (_, reason) in enumerate(LINES, 1) if reason}
GOOD = len([1 for line, reason in LINES if line and not reason])
READ = GOOD + len(BAD)


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n".join(line for line, _ in LINES) + b"\n")
    return path


def _invoke(args: list[str]):
    from sftdata.cli import app

    result = CliRunner().invoke(app, args, env={"COLUMNS": "300", "NO_COLOR": "1"})
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output and "internal error" not in result.stderr, result.stderr
    return result


def _rows(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


TOK = "TOKENIZER"
COMMANDS = {  # name: (arguments after the input, exit code, the rejects file, the files with good rows)
    "validate": (["--rejects", "{o}/v.rejects.jsonl"], 1, "v.rejects.jsonl", []),
    "render": (["-o", "{o}/r.jsonl", "--eos", "</s>"], 0, "r.rejects.jsonl", ["r.jsonl"]),
    "dedup": (["-o", "{o}/d.jsonl"], 0, "d.rejects.jsonl", ["d.jsonl"]),
    "filter": (["-o", "{o}/f.jsonl", "--min-chars", "1"], 0, "f.rejects.jsonl", ["f.jsonl"]),
    "split": (["-o", "{o}/s", "--eval-ratio", "0.3"], 0, "s/rejects.jsonl", ["s/train.jsonl", "s/eval.jsonl"]),
    "export": (["--to", "openai", "-o", "{o}/e.jsonl"], 0, "e.rejects.jsonl", ["e.jsonl"]),
    "pretokenize": (["-o", "{o}/p.jsonl", "--tokenizer", TOK, "--template", "chatml", "--max-seq-length", "8192"], 0,
                    "p.rejects.jsonl", ["p.jsonl"]),
    "stats": (["--tokenizer", TOK], 0, None, []),
    "audit": (["--tokenizer", TOK], 1, None, []),  # exits 1 on its findings (SmolLM2's pad is its EOS)
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_record_reading_command_survives_the_hostile_file(command, hostile, tmp_path, request):
    extra, code, rejects, outputs = COMMANDS[command]
    if TOK in extra:
        extra = [str(request.getfixturevalue("smollm2_tokenizer_dir")) if a == TOK else a for a in extra]
    out = tmp_path / "out"
    result = _invoke([command, str(hostile), *[a.format(o=out) for a in extra], "--json"])
    assert result.exit_code == code, result.stderr
    summary = orjson.loads(result.stdout.splitlines()[-1])
    assert summary["read"] == READ and summary["rejected"] == len(BAD), summary
    assert summary["read"] == sum(summary[k] for k in ("written", "rejected", "filtered", "deduplicated"))
    assert summary["written"] + summary["filtered"] + summary["deduplicated"] == GOOD
    assert "hostile.jsonl:3" in result.stderr  # the first examples, by file and line
    if rejects:
        got = {r["line"]: r["reason"] for r in _rows(out / rejects) if r["stage"] != "tokenize"}
        assert got == BAD
        assert all(Path(r["file"]).name == "hostile.jsonl" for r in _rows(out / rejects))
    written = [row for name in outputs for row in _rows(out / name)]
    assert len(written) == (summary["written"] if outputs else 0)
    if command in ("dedup", "filter", "split"):  # records come out as they went in
        assert sorted(r["id"] for r in written) == ["g1", "g2", "g3", "g4", "g5", "g5", "g6", "g7"]
        assert RTL in written
        assert len(next(r for r in written if r["id"] == "g4")["messages"]) == 1000


def test_train_data_counts_every_hostile_line(hostile, smollm2_tokenizer_dir):
    from transformers import AutoTokenizer

    from sftdata.trainers.data import Preparer

    data = Preparer(AutoTokenizer.from_pretrained(smollm2_tokenizer_dir), None, 8192).load([hostile])
    rejected = {k.split(":", 1)[1]: v for k, v in data.counts.items() if k.startswith("rejected:")}
    expected: dict[str, int] = {}
    for reason in BAD.values():
        expected[reason] = expected.get(reason, 0) + 1
    assert rejected == expected
    assert data.counts["used"] + data.counts["too_long"] == GOOD  # the 1,000-turn chat may be over 8,192 tokens
    assert data.counts["used"] == len(data.input_ids) >= GOOD - 1


def test_synth_stops_on_a_bad_seed_line_naming_it(hostile, tmp_path):
    result = _invoke(["synth", str(hostile), "-o", str(tmp_path / "s.jsonl"), "-n", "1", "--mode", "answer",
                      "--base-url", "http://127.0.0.1:9/v1"])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {hostile}:3: invalid JSON: unexpected end of data at column 34"
    assert not (tmp_path / "s.jsonl").exists()


# --- one enormous row through the tokenizing commands ----------------------------------------------

BIG_WORDS = 800_000  # a 5.6 MB line, past sftdata.tokenize.encode.MAX_SAMPLE_CHARS (tokenized whole it took ~1 GB)
BIG = {  # name: (arguments, exit code, rejects file, output file, (stage, reason) of the big row, how it counts)
    "pretokenize-drop": (["pretokenize", "-o", "{o}/p.jsonl", "--tokenizer", TOK, "--template", "chatml",
                          "--max-seq-length", "2048"], 0, "p.rejects.jsonl", "p.jsonl", ("tokenize", "too_long"),
                         "filtered"),
    "pretokenize-truncate": (["pretokenize", "-o", "{o}/p.jsonl", "--tokenizer", TOK, "--template", "chatml",
                              "--max-seq-length", "2048", "--on-overflow", "truncate"], 0, "p.rejects.jsonl", "p.jsonl",
                             ("tokenize", "too_large"), "rejected"),
    "filter": (["filter", "-o", "{o}/f.jsonl", "--tokenizer", TOK, "--max-tokens", "2048"], 0, "f.rejects.jsonl",
               "f.jsonl", ("filter", "too_many_tokens"), "filtered"),
    "stats": (["stats", "--tokenizer", TOK, "--max-seq-length", "2048"], 0, None, None, ("tokenize", "too_large"),
              "rejected"),
    "audit": (["audit", "--tokenizer", TOK, "--max-seq-length", "2048"], 1, None, None, ("tokenize", "too_large"),
              "rejected"),
    "inspect": (["inspect", "--tokenizer", TOK, "-n", "3"], 0, None, None, None, None),
}


@pytest.fixture(scope="module")
def big_row(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import random

    rnd = random.Random(0)
    words = ["".join(rnd.choices("abcdefghij", k=6)) for _ in range(2000)]
    rows = [{"instruction": "hi", "output": "x"}, {"instruction": " ".join(rnd.choices(words, k=BIG_WORDS)),
                                                   "output": "y"}, {"instruction": "hi", "output": "again"}]
    path = tmp_path_factory.mktemp("big") / "big.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


@pytest.mark.parametrize("command", list(BIG))
def test_an_enormous_row_is_rejected_before_tokenizing(command, big_row, tmp_path, smollm2_tokenizer_dir):
    """The row is turned away before the tokenizer sees it (certainly over the drop limit, or over the
    character cap) with file, line and reason; the good rows come out; memory stays small."""
    import os
    import sys
    import time

    args, code, rejects, output, where, counted = BIG[command]
    args = [str(smollm2_tokenizer_dir) if a == TOK else a.format(o=tmp_path) for a in args]
    started = time.perf_counter()
    done, peak_kib = run_measured([sys.executable, "-m", "sftdata.cli", args[0], str(big_row), *args[1:], "--json"],
                                  timeout=120, env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"})
    seconds = time.perf_counter() - started
    assert done.returncode == code and "Traceback" not in done.stderr, done.stderr
    peak_mib = peak_kib / 1024
    assert peak_mib < 512, f"peak RSS {peak_mib:.0f} MiB"
    assert seconds < 60
    summary = orjson.loads(done.stdout.splitlines()[-1])
    if command == "inspect":  # shows the samples that tokenize
        assert [s["locator"]["line"] for s in summary["samples"]] == [1, 3]
        return
    assert summary["read"] == 3 and summary["written"] == 2 and summary[counted] == 1, summary
    assert summary["read"] == sum(summary[k] for k in ("written", "rejected", "filtered", "deduplicated"))
    assert summary["by_reason"] == {where[1]: 1}
    assert f"big.jsonl:2: {where[1]}" in done.stderr
    if rejects:
        (row,) = _rows(tmp_path / rejects)
        assert (Path(row["file"]).name, row["line"], row["stage"], row["reason"]) == ("big.jsonl", 2, *where)
        assert row["raw"]["output"] == "y"  # the record, to fix and feed again
        assert len(_rows(tmp_path / output)) == 2


@pytest.mark.parametrize("overlong,counts", [("drop", {"too_long": 1}), ("truncate", {"rejected:too_large": 1})])
def test_train_data_turns_an_enormous_row_away_before_tokenizing(overlong, counts, big_row, smollm2_tokenizer_dir):
    from sftdata.trainers.data import Preparer

    data = Preparer(str(smollm2_tokenizer_dir), None, 2048, overlong).load([big_row])
    assert data.counts["used"] == len(data.input_ids) == 2
    assert {k: v for k, v in data.counts.items() if k not in ("read", "used")} == counts
