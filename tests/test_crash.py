"""Crash safety with real signals and real write failures, on the `sftdata` command as a user runs it.

* kill -9 (SIGKILL) of `convert`, `render`, `dedup` and `pretokenize` once they are writing: the
  final output names either do not exist (first run) or still hold the previous complete output
  (a re-run killed over it); re-running gives byte-identical outputs to an uninterrupted run (the
  `.meta.json` sidecar too, less its `created`/`seconds` fields).
* kill -9 of `train` after its first checkpoint: `--resume` finishes the run from that checkpoint.
* Disk full: a 2 MiB tmpfs (mountable as root here) gives ENOSPC for real; RLIMIT_FSIZE gives EFBIG
  for real on the same write path where no filesystem can be mounted. Either way: exit 2, one line
  naming the output and the cause, no traceback, nothing under the final name, an earlier output
  at that name unchanged.

`synth` killed with -9 against the real llama.cpp server is in test_synth_server.py.
"""
from __future__ import annotations

import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

VOLATILE_META = ("created", "seconds")
WORDS = ["alpha", "beta", "gamma", "delta", "서울", "바다", "하늘", "omega", "kappa", "zeta"]


def _env() -> dict[str, str]:
    return {**os.environ, "NO_COLOR": "1", "COLUMNS": "120"}


def _cmd(*args: object) -> list[str]:
    return [sys.executable, "-m", "sftdata.cli", *map(str, args)]


def _run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def _write_records(path: Path, rows: int, seed: int = 0) -> None:
    """Instruction records (as convert writes them) with a few near duplicates and a few broken lines."""
    rnd = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        for i in range(rows):
            words = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(4, 24)))
            handle.write(orjson.dumps({"instruction": f"task {i // 3}: {words}", "input": "",
                                       "output": f"answer {i} " + "z" * rnd.randint(20, 300)}) + b"\n")
            if i % 1009 == 5:
                handle.write(b'{"instruction": "cut off\n')


def _tmp_files(folder: Path, name: str) -> list[Path]:
    return sorted(folder.glob(f".{name}.*.tmp"))


def _kill_while_writing(args: list[str], cwd: Path, out: Path, started_bytes: int = 1) -> None:
    """Start the command, wait until the temporary file of `out` holds data, then SIGKILL it."""
    proc = subprocess.Popen(args, cwd=cwd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folder = (cwd / out).parent
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the command finished before it could be killed: give it more rows"
            tmp = _tmp_files(folder, out.name)
            if tmp and tmp[0].stat().st_size >= started_bytes:
                break
            time.sleep(0.01)
        else:
            raise AssertionError(f"no temporary file for {out} appeared")
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL


def _outputs(folder: Path) -> dict[str, bytes]:
    """Every visible file under the output folder (temporary files start with a dot)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}


def _same_outputs(got: dict[str, bytes], want: dict[str, bytes]) -> None:
    assert sorted(got) == sorted(want)
    for name in want:
        if name.endswith(".meta.json"):
            a, b = orjson.loads(got[name]), orjson.loads(want[name])
            for key in VOLATILE_META:
                a.pop(key), b.pop(key)
            assert a == b, name
        else:
            assert got[name] == want[name], name


def _check_complete(folder: Path, summary: dict) -> None:
    assert summary["read"] == sum(summary[k] for k in ("written", "rejected", "filtered", "deduplicated"))
    out = folder / Path(summary["output"]).name
    lines = out.read_bytes().splitlines()
    assert len(lines) == summary["written"] and all(orjson.loads(line) for line in lines)


TOKENIZER = "TOKENIZER"
COMMANDS = {  # name: (rows of input, arguments after the input file)
    "convert": (60_000, ["convert", "in.jsonl", "-o", "out/data.jsonl"]),
    "render": (25_000, ["render", "in.jsonl", "-o", "out/data.jsonl", "--template", "alpaca", "--eos", "</s>"]),
    "dedup": (25_000, ["dedup", "in.jsonl", "-o", "out/data.jsonl"]),
    "pretokenize": (8_000, ["pretokenize", "in.jsonl", "-o", "out/data.jsonl", "--tokenizer", TOKENIZER,
                            "--template", "alpaca", "--max-seq-length", "96", "--on-overflow", "truncate"]),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_kill_9_leaves_no_partial_output_and_a_rerun_is_identical(command, tmp_path, request):
    rows, args = COMMANDS[command]
    if TOKENIZER in args:
        args = [str(request.getfixturevalue("smollm2_tokenizer_dir")) if a == TOKENIZER else a for a in args]
    args = _cmd(*args, "--json")
    out = Path("out/data.jsonl")
    ref, crash = tmp_path / "ref", tmp_path / "crash"
    _write_records(ref / "in.jsonl", rows)
    crash.mkdir()
    shutil.copy(ref / "in.jsonl", crash / "in.jsonl")

    # an uninterrupted run: the reference
    done = _run(args, ref)
    assert done.returncode == 0, done.stderr
    _check_complete(ref / "out", json.loads(done.stdout.splitlines()[-1]))
    want = _outputs(ref / "out")
    assert len(want) >= 3  # data, rejects, meta (and dedup's dupes)

    # killed while re-writing over it: the complete earlier output stays under every final name
    _kill_while_writing(args, ref, out)
    assert _outputs(ref / "out") == want
    assert _tmp_files(ref / "out", out.name)  # the partial data is only in a temporary file

    # killed on a first run: nothing under the final names; then a re-run gives the same bytes
    _kill_while_writing(args, crash, out)
    assert not (crash / out).exists() and not (crash / "out" / "data.meta.json").exists()
    done = _run(args, crash)
    assert done.returncode == 0, done.stderr
    _same_outputs(_outputs(crash / "out"), want)


# -- train ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_dir(smollm2_gguf: Path) -> Path:
    from sftdata.trainers.models import convert_gguf
    from support.realmodels import CACHE_DIR

    return convert_gguf(smollm2_gguf, cache=CACHE_DIR / "sftdata-cache" / "models")


def test_resume_skips_a_checkpoint_whose_save_was_cut_short(tmp_path):
    """What a kill during a checkpoint's save leaves: the folder without (or with a cut) trainer_state.json."""
    from sftdata.trainers.outputs import last_complete_checkpoint

    folder = tmp_path / "checkpoints"
    assert last_complete_checkpoint(folder) is None
    for step, state in ((2, b'{"global_step": 2}'), (10, b'{"global_step": 10}'), (12, b'{"global_st'), (14, None)):
        (folder / f"checkpoint-{step}").mkdir(parents=True)
        (folder / f"checkpoint-{step}" / "adapter_model.safetensors").write_bytes(b"x")
        if state is not None:
            (folder / f"checkpoint-{step}" / "trainer_state.json").write_bytes(state)
    (folder / "checkpoint-99.tmp").mkdir()
    assert last_complete_checkpoint(folder) == str(folder / "checkpoint-10")


@pytest.mark.train  # trains in its own body (a CLI subprocess): no fixture shows it
def test_kill_9_during_train_then_resume_finishes_from_the_checkpoint(model_dir, shared_data, tmp_path):
    rows = json.loads((shared_data / "alpaca_en_demo.json").read_text(encoding="utf-8"))[:24]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                      encoding="utf-8")
    args = _cmd("train", "a.jsonl", "--model", model_dir, "-o", "run", "--config", "cpu-smoke", "--template",
                "alpaca", "--max-steps", 2, "--save-steps", 1, "--batch-size", 2, "--max-length", 64,
                "--lora-r", 4, "--logging-steps", 1, "--no-4bit")  # resuming is the same with 4-bit, 3x slower on CPU
    state = tmp_path / "run" / "checkpoints" / "checkpoint-1" / "trainer_state.json"
    proc = subprocess.Popen(args, cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 400
    try:
        while not state.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "no checkpoint-1 within the time limit"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    info = json.loads((tmp_path / "run" / "sftdata_train.json").read_text())
    assert info["status"] == "running" and not (tmp_path / "run" / "adapter_model.safetensors").exists()

    again = _run(args + ["--json"], tmp_path, timeout=600)  # without --resume: refused, nothing touched
    assert again.returncode == 2 and "--resume" in again.stderr

    done = _run(args + ["--resume", "--json"], tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    info = json.loads((tmp_path / "run" / "sftdata_train.json").read_text())
    assert info["status"] == "done"
    steps = [e["step"] for e in json.loads((tmp_path / "run" / "metrics.json").read_text())["train"]]
    assert steps == [1, 2]  # step 1 from the checkpoint's history, step 2 from the resumed run
    assert (tmp_path / "run" / "adapter_model.safetensors").is_file()


# -- disk full --------------------------------------------------------------------------------------

GOOD_ROWS = 20_000  # ~2.7 MB of records: more than the 2 MiB tmpfs holds


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 2 MiB filesystem: writing past it fails with ENOSPC."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:  # RLIMIT_FSIZE below provokes the same failure path wherever this is denied
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); see docs/reliability.md")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _one_clear_error(done: subprocess.CompletedProcess[str], out: Path, words: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and words in line and str(out.parent) in line, line


def test_disk_full_on_a_real_small_filesystem(tiny_disk, tmp_path):
    _write_records(tmp_path / "in.jsonl", GOOD_ROWS)
    _write_records(tmp_path / "small.jsonl", 50)
    out = tiny_disk / "data.jsonl"
    done = _run(_cmd("convert", "small.jsonl", "-o", out), tmp_path)  # an earlier, small, good output
    assert done.returncode == 0, done.stderr
    before = _outputs(tiny_disk)

    done = _run(_cmd("convert", "in.jsonl", "-o", out), tmp_path)
    _one_clear_error(done, out, "No space left on device")
    assert _outputs(tiny_disk) == before  # the earlier output is untouched, nothing partial beside it
    assert not _tmp_files(tiny_disk, out.name) and not _tmp_files(tiny_disk, "data.rejects.jsonl")

    done = _run(_cmd("dedup", "in.jsonl", "-o", tiny_disk / "d.jsonl"), tmp_path)  # four outputs at once
    _one_clear_error(done, tiny_disk / "d.jsonl", "No space left on device")
    assert _outputs(tiny_disk) == before and not list(tiny_disk.glob(".*.tmp"))


def _limited(limit: int):
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so write() fails with EFBIG instead of killing
    return preexec


@pytest.mark.parametrize("command", ["convert", "dedup"])
def test_a_file_size_limit_fails_like_a_full_disk(command, tmp_path):
    """RLIMIT_FSIZE makes the kernel refuse writes past 1 MiB (EFBIG) on the real write path."""
    _write_records(tmp_path / "in.jsonl", GOOD_ROWS)
    out = tmp_path / "out" / "data.jsonl"
    out.parent.mkdir()
    out.write_bytes(b'{"instruction": "previous", "input": "", "output": "run"}\n')
    done = subprocess.run(_cmd(command, "in.jsonl", "-o", out), cwd=tmp_path, env=_env(), capture_output=True,
                          text=True, timeout=300, preexec_fn=_limited(1 << 20))
    _one_clear_error(done, out, "File too large")
    assert out.read_bytes() == b'{"instruction": "previous", "input": "", "output": "run"}\n'
    assert [p.name for p in out.parent.iterdir()] == ["data.jsonl"]
