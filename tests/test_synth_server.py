"""sftdata synth against a real OpenAI-compatible server (llama-cpp-python + SmolLM2-135M-Instruct on
127.0.0.1), with a fault-injecting proxy in front of it where a test needs faults or a request log.

Runs are kept small (a few records, short replies, plain-text answers where the test is about
robustness rather than structured output) so the file stays within a few minutes on two cores.
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import orjson
import pytest

from sftdata.pipeline import validate
from sftdata.schemas.records import RecordKind
from sftdata.synthesis import SynthOptions, synth
from sftdata.synthesis.tasks import EVOLVE_METHODS
from support.faultproxy import Canned, Error, FaultProxy, Stall

QUESTIONS = [
    ("q1", "What is the capital of France? Answer in one short sentence."),
    ("q2", "Name a primary colour. Answer in one short sentence."),
    ("q3", "What do bees make? Answer in one short sentence."),
    ("q4", "How many legs does a spider have? Answer in one short sentence."),
]

SEED_MAPPING = """\
to: instruction
fields:
  instruction: instruction
  input: {path: "instances[0].input", required: false}
  output: "instances[0].output"
  id: id
keep_unmapped: false
"""


def _lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def _wait_for_lines(path: Path, count: int, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} did not reach {count} lines within {timeout:g} s")


def synth_cli(*args: object, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sftdata.cli", "synth", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout)


def _summary(proc: subprocess.CompletedProcess) -> dict:
    return orjson.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def questions(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("seeds") / "questions.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"id": i, "instruction": q}) + b"\n" for i, q in QUESTIONS))
    return path


@pytest.fixture(scope="module")
def seed_records(shared_data, tmp_path_factory) -> Path:
    """The 175 self-instruct seed tasks as instruction records (first instance of each)."""
    from sftdata.pipeline import convert

    folder = tmp_path_factory.mktemp("seed-records")
    (folder / "map.yaml").write_text(SEED_MAPPING)
    result = convert([shared_data / "seed_tasks.jsonl"], folder / "seeds.jsonl", mapping=folder / "map.yaml")
    assert result.summary()["written"] == 175
    return folder / "seeds.jsonl"


def _answer_options(base_url: str, count: int, **extra) -> SynthOptions:
    options = SynthOptions(mode="answer", count=count, base_url=base_url, model="smollm2",
                           response_format="none", max_tokens=48, concurrency=2, backoff=0.3)
    for name, value in extra.items():
        setattr(options, name, value)
    return options


# -- structured output and the three modes ---------------------------------------------------------

def test_self_instruct_with_auto_response_format(llama_server, seed_records, tmp_path):
    """auto: the server refuses json_schema (llama-cpp-python answers 500 naming response_format),
    so synth falls back to json_object with the schema, which the server enforces."""
    out = tmp_path / "si.jsonl"
    with FaultProxy(llama_server.base_url) as proxy:
        proc = synth_cli(seed_records, "-o", out, "-n", 2, "--base-url", proxy.base_url, "--per-request", 1,
                         "--few-shot", 1, "--max-tokens", 160, "--concurrency", 1, "--seed", 3, "--json")
    assert proc.returncode == 0, proc.stderr
    summary = _summary(proc)
    assert summary["complete"] and summary["accepted"] == 2 and summary["response_format"] == "json_object"
    assert set(summary) >= {"requested", "accepted", "rejected", "failed", "by_reason", "usage"}
    assert summary["usage"]["completion_tokens"] > 0
    chat = proxy.completions()
    assert chat[0].body["response_format"]["type"] == "json_schema" and chat[0].outcome == "forwarded 500"
    assert all(e.body["response_format"] == {"type": "json_object", "schema": e.body["response_format"]["schema"]}
               for e in chat[1:])
    assert validate([out], kind=RecordKind.instruction).summary()["rejected"] == 0
    rows = _lines(out)
    meta = rows[0]["meta"]["synth"]
    assert meta["mode"] == "self-instruct" and meta["backend"] == "openai-compatible" and meta["model"]
    assert meta["template"]["name"] == "synth_self_instruct_en" and len(meta["template"]["sha256"]) == 64
    assert meta["seed_ids"][0].startswith("seed_task_") and meta["request_id"]
    assert meta["sampling"]["max_tokens"] == 160 and meta["response_format"] == "json_object"
    sidecar = orjson.loads(out.with_name("si.meta.json").read_bytes())
    assert sidecar["command"] == "synth" and sidecar["counts"]["accepted"] == 2


def test_answer_mode_fills_missing_outputs(llama_server, questions, tmp_path):
    out = tmp_path / "answers.jsonl"
    result = synth(questions, out, _answer_options(llama_server.base_url, 4))
    assert result.complete
    rows = _lines(out)
    assert sorted(r["meta"]["synth"]["seed_ids"][0] for r in rows) == ["q1", "q2", "q3", "q4"]
    by_id = dict(QUESTIONS)
    assert all(r["instruction"] == by_id[r["meta"]["synth"]["seed_ids"][0]] and r["output"].strip() for r in rows)


def test_evolve_mode_records_the_method(llama_server, seed_records, tmp_path):
    reply = orjson.dumps({"instruction": "Explain in three numbered steps how to brew green tea at 80 °C.",
                          "input": "", "output": "1. Heat water to 80 °C. 2. Steep 2 minutes. 3. Pour."}).decode()
    with FaultProxy(llama_server.base_url, lambda n: Canned(reply)) as proxy:
        result = synth(seed_records, tmp_path / "evolved.jsonl", mode="evolve", count=1, base_url=proxy.base_url,
                       model="canned", concurrency=1)
    assert result.complete
    meta = _lines(tmp_path / "evolved.jsonl")[0]["meta"]["synth"]
    assert meta["method"] in EVOLVE_METHODS and len(meta["seed_ids"]) == 1
    assert "Original task" in proxy.completions()[0].body["messages"][-1]["content"]


def test_korean_novelty_in_a_run(llama_server, tmp_path):
    seeds = tmp_path / "ko.jsonl"
    seeds.write_bytes(orjson.dumps({"id": "k1", "instruction": "서울의 인구는 몇 명인가요?", "output": "약 940만 명입니다."})
                      + b"\n" + orjson.dumps({"id": "k2", "instruction": "한국의 전통 음식을 하나 소개해 주세요.",
                                              "output": "김치는 배추를 소금에 절여 양념한 발효 음식입니다."}) + b"\n")

    def task(instruction: str) -> dict:
        return {"instruction": instruction, "input": "", "output": "네, 자세히 설명해 드리겠습니다. 먼저 재료를 준비합니다."}

    replies = {0: [task("부산의 인구는 몇 명인가요?"), task("김치찌개를 맛있게 끓이는 방법을 단계별로 알려 주세요.")],
               1: [task("김치찌개를 맛있게 끓이는 방법을 단계별로 알려주세요!"), task("가을에 가 볼 만한 국내 여행지를 세 곳 추천해 주세요.")]}
    with FaultProxy(llama_server.base_url, lambda n: Canned(orjson.dumps({"tasks": replies[n]}).decode())) as proxy:
        out = tmp_path / "ko_out.jsonl"
        result = synth(seeds, out, count=2, lang="ko", per_request=2, base_url=proxy.base_url, model="canned",
                       concurrency=1, check_lang=True)
    assert result.complete
    assert [r["instruction"] for r in _lines(out)] == [replies[0][1]["instruction"], replies[1][1]["instruction"]]
    assert result.summary()["by_reason"] == {"too_similar": 2}
    rejects = _lines(tmp_path / "ko_out.rejects.jsonl")
    assert {r["record"]["instruction"] for r in rejects} == {replies[0][0]["instruction"], replies[1][0]["instruction"]}
    assert "seed k1" in rejects[0]["message"]
    assert "예시" in proxy.completions()[0].body["messages"][-1]["content"]  # the Korean template


# -- robustness ------------------------------------------------------------------------------------

def test_kill_9_then_rerun_gives_the_same_count_without_duplicates(llama_server, questions, tmp_path):
    out = tmp_path / "killed.jsonl"
    args = [sys.executable, "-m", "sftdata.cli", "synth", str(questions), "-o", str(out), "--mode", "answer",
            "-n", "4", "--base-url", llama_server.base_url, "--response-format", "none", "--max-tokens", "48",
            "--concurrency", "2"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_lines(out, 1)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    before = out.read_bytes()
    again = subprocess.run(args + ["--json"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    after = out.read_bytes()
    assert after.startswith(before[: before.rfind(b"\n") + 1])  # nothing written before was lost
    rows = _lines(out)
    targets = [r["meta"]["synth"]["seed_ids"][0] for r in rows]
    assert len(rows) == 4 and sorted(targets) == ["q1", "q2", "q3", "q4"]
    summary = _summary(again)
    assert summary["resumed"] >= 1 and summary["accepted"] == 4


def test_ctrl_c_then_rerun_continues(llama_server, seed_records, tmp_path):
    def reply(n: int) -> Canned:
        words = hashlib.sha256(str(n).encode()).hexdigest()[:40]  # unrelated texts: novelty lets them all pass
        task = {"instruction": f"Spell out {words}", "input": "", "output": f"Answer {n}."}
        return Canned(orjson.dumps({"tasks": [task]}).decode(), delay=0.3)

    out = tmp_path / "interrupted.jsonl"
    with FaultProxy(llama_server.base_url, reply) as proxy:
        args = [sys.executable, "-m", "sftdata.cli", "synth", str(seed_records), "-o", str(out), "-n", "8",
                "--per-request", "1", "--base-url", proxy.base_url, "--model", "canned", "--concurrency", "2"]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _wait_for_lines(out, 2, timeout=120)
        finally:
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 130 and "re-run the same command" in stderr
        first = _lines(out)
        again = subprocess.run(args + ["--json"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    rows = _lines(out)
    assert rows[: len(first)] == first and len(rows) == 8
    assert len({r["instruction"] for r in rows}) == 8
    assert _summary(again)["resumed"] == len(first)


def test_server_killed_and_restarted_mid_run(own_llama_server, questions, tmp_path):
    server = own_llama_server.start()
    out = tmp_path / "restart.jsonl"
    results: list = []
    worker = threading.Thread(target=lambda: results.append(
        synth(questions, out, _answer_options(server.base_url, 4, concurrency=1, retries=8, backoff=0.5))))
    worker.start()
    try:
        _wait_for_lines(out, 1)
        server.kill()
        time.sleep(1.0)
        server.start()
    finally:
        worker.join(600)
    summary = results[0].summary()
    assert results[0].complete and summary["failed"] == 0 and len(_lines(out)) == 4
    assert summary["retried_by_reason"].get("connection_error", 0) >= 1


def test_faults_are_retried_and_nothing_is_lost(llama_server, questions, tmp_path):
    # One worker, so the first request meets every fault in turn (with more, the run could finish
    # while one of them still stalls); Retry-After across workers is tested in test_synth_units.
    schedule = {0: Error(429, {"Retry-After": "2"}), 1: Error(500), 2: Stall(11), 3: Error(503)}
    out = tmp_path / "faults.jsonl"
    with FaultProxy(llama_server.base_url, schedule) as proxy:
        result = synth(questions, out, _answer_options(proxy.base_url, 3, timeout=10, rpm=120, concurrency=1))
    summary = result.summary()
    assert result.complete and summary["failed"] == 0 and len(_lines(out)) == 3
    assert set(summary["retried_by_reason"]) >= {"rate_limited", "http_500", "timeout", "http_503"}
    assert not [r for r in _lines(tmp_path / "faults.rejects.jsonl") if r["stage"] == "request"]
    chat = proxy.completions()
    assert chat[1].arrived - chat[0].arrived >= 1.9  # Retry-After: 2 was honoured
    gaps = [b.arrived - a.arrived for a, b in zip(chat, chat[1:])]
    assert min(gaps) >= 0.5 * 0.85  # --rpm 120 held through retries


def test_rpm_limit_holds_under_a_burst(llama_server, questions, tmp_path):
    with FaultProxy(llama_server.base_url) as proxy:
        result = synth(questions, tmp_path / "rpm.jsonl",
                       _answer_options(proxy.base_url, 4, concurrency=4, rpm=30, max_tokens=32))
    assert result.complete
    stamps = [e.arrived for e in proxy.completions()]
    assert len(stamps) >= 4
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert min(gaps) >= 2.0 * 0.9, gaps  # 30/min: one every 2 s, although 4 workers started at once
    assert (len(stamps) - 1) / (stamps[-1] - stamps[0]) * 60 <= 30 * 1.05


def test_the_api_key_never_leaks(llama_server, questions, tmp_path):
    key = f"sk-test-LEAKCHECK-{uuid.uuid4().hex}"
    env = {**os.environ, "SFTDATA_TEST_KEY": key}
    common = ["--mode", "answer", "-n", 1, "--api-key-env", "SFTDATA_TEST_KEY", "--response-format", "none",
              "--max-tokens", 48, "--json"]
    with FaultProxy(llama_server.base_url) as proxy:
        ok = synth_cli(questions, "-o", tmp_path / "a" / "ok.jsonl", "--base-url", proxy.base_url, *common, env=env)
    assert ok.returncode == 0, ok.stderr
    assert proxy.completions()[0].auth_sha256 == hashlib.sha256(f"Bearer {key}".encode()).hexdigest()
    echo = Error(401, body={"error": {"message": f"Incorrect API key provided: {key}.", "type": "invalid_request_error"}})
    with FaultProxy(llama_server.base_url, lambda n: echo) as proxy:
        refused = synth_cli(questions, "-o", tmp_path / "b" / "refused.jsonl", "--base-url", proxy.base_url, *common,
                            env=env)
    assert refused.returncode == 2 and "refused the credentials" in refused.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) >= 4
    for blob in [ok.stdout, ok.stderr, refused.stdout, refused.stderr] + [p.read_text(errors="replace") for p in written]:
        assert key not in blob and "LEAKCHECK" not in blob


def test_max_requests_stops_with_exit_1(llama_server, seed_records, tmp_path):
    with FaultProxy(llama_server.base_url, lambda n: Canned("Sorry, I cannot help with that.")) as proxy:
        proc = synth_cli(seed_records, "-o", tmp_path / "never.jsonl", "-n", 2, "--max-requests", 3,
                         "--base-url", proxy.base_url, "--model", "canned", "--json")
    assert proc.returncode == 1
    summary = _summary(proc)
    assert summary["accepted"] == 0 and summary["budget"]["used"] == 3 and summary["by_reason"] == {"invalid_json": 3}
    assert "--max-requests 3 reached" in proc.stderr and len(proxy.completions()) == 3


# -- the local backend ------------------------------------------------------------------------------

@pytest.mark.slow  # generates with the de-quantized SmolLM2 through transformers on CPU: ~30 s CPU, ~60 s wall
def test_local_transformers_backend_from_gguf(smollm2_gguf, questions, tmp_path):
    # The de-quantized model is cached beside the test models, so only the first session pays for it;
    # one torch thread, since multi-threaded CPU generation crawls on a busy two-core machine.
    env = {**os.environ, "SFTDATA_CACHE": str(smollm2_gguf.parent / "sftdata-cache"), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "local.jsonl"
    proc = synth_cli(questions, "-o", out, "--mode", "answer", "-n", 1, "--model", smollm2_gguf, "--max-tokens", 48,
                     "--concurrency", 2, "--max-requests", 12, "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert _summary(proc)["complete"]
    meta = _lines(out)[0]["meta"]["synth"]
    assert meta["backend"] == "local-transformers" and meta["model"] == str(smollm2_gguf)
