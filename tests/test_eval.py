"""`sftdata eval` on the shared identity run (SmolLM2-135M, 30 CPU steps) against its base, and the pairwise
judge against a real llama.cpp server (SmolLM2 as the judge: its verdicts are weak, the plumbing is what
is checked: both orders asked, the cache replayed, a killed run resumed)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

import sftdata
from sftdata.cli import app
from support.faultproxy import FaultProxy, Stall
from support.identity_run import AUTHOR, NAME

HELD_OUT = [("Can you tell me your name?", f"I am {NAME}, an AI assistant developed by {AUTHOR}."),
            ("Introduce yourself in one sentence.", f"I am {NAME}, an AI assistant developed by {AUTHOR}."),
            ("Who built you?", f"I was developed by {AUTHOR}. I am {NAME}."),
            ("What should I call you?", f"You may call me {NAME}."),
            ("hey there", f"Hello! I am {NAME}, an AI assistant developed by {AUTHOR}. How can I help?"),
            ("Are you a person?", f"No, I am {NAME}, an AI assistant developed by {AUTHOR}.")]


def _eval_data(path: Path, rows: list[tuple[str, str]] = HELD_OUT) -> Path:
    path.write_text("".join(json.dumps({"instruction": q, "output": a}) + "\n" for q, a in rows)
                    + json.dumps({"instruction": "no answer here"}) + "\n", encoding="utf-8")
    return path


@pytest.fixture()
def cache_env(monkeypatch, sftdata_cache: Path) -> Path:
    monkeypatch.setenv("SFTDATA_CACHE", str(sftdata_cache))
    return sftdata_cache


def test_tuned_beats_base_on_held_out_identity_prompts(identity_run, cache_env, tmp_path):
    data = _eval_data(tmp_path / "eval.jsonl")
    out = tmp_path / "eval" / "answers.jsonl"
    result = sftdata.eval(identity_run["out"], [data], base=True, output=out, max_new_tokens=40, lang="en",
                          report=tmp_path / "eval.html", fail_under=["stop_rate=0.8", "loss_gain=0.1"])
    s = result.summary()
    tuned, base = s["tuned"], s["base"]
    assert (s["samples"], s["rejected"]) == (6, 1)
    assert tuned["loss"] < base["loss"] - 0.5 and tuned["perplexity"] < base["perplexity"]
    assert tuned["loss_tokens"] == base["loss_tokens"] > 0
    assert tuned["stop_rate"] == 1.0 and tuned["stop_rate"] >= base["stop_rate"]
    assert tuned["chrf"] > base["chrf"] and tuned["rouge_l"] > base["rouge_l"]
    assert s["failed"] == []
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [r["source"]["line"] for r in rows] == [1, 2, 3, 4, 5, 6]  # each answer traceable to its line
    assert sum(NAME in r["tuned"]["text"] for r in rows) >= 4
    assert not any(NAME in r["base"]["text"] for r in rows)
    assert all(r["tuned"]["stopped"] for r in rows)
    meta = orjson.loads((tmp_path / "eval" / "answers.meta.json").read_bytes())
    assert meta["sources"][0]["sha256"] and meta["template"]["name"] == "chatml"
    assert meta["results"]["tuned"]["loss"] == tuned["loss"]
    reject = orjson.loads((tmp_path / "eval" / "answers.rejects.jsonl").read_bytes())
    assert reject["line"] == 7
    page = (tmp_path / "eval.html").read_text(encoding="utf-8")
    assert "Worst: lowest chrF" in page and NAME in page and "<script" not in page


def test_cli_json_and_gates(identity_run, cache_env, tmp_path):
    data = _eval_data(tmp_path / "eval.jsonl", HELD_OUT[:2])
    args = ["eval", str(identity_run["out"]), "--data", str(data), "-o", str(tmp_path / "a.jsonl"),
            "--max-new-tokens", "32", "--fail-under", "chrf=101", "--json"]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 1, done.output
    summary = orjson.loads(done.stdout.strip().splitlines()[0])
    assert len(done.stdout.strip().splitlines()) == 1
    assert summary["failed"] == [f"chrf {summary['tuned']['chrf']} < 101"] and "base" not in summary
    bad = CliRunner().invoke(app, [*args[:-3], "--fail-under", "bleu=1"])
    assert bad.exit_code == 2 and "METRIC=NUMBER" in bad.output


# References the model does not say word for word: a tuned answer equal to its reference would make the two
# orders of a pair one identical request, which the cache then answers.
JUDGED = [("Can you tell me your name?", "My name is Hanbit."), ("Who built you?", "The sftdata team built me."),
          ("What should I call you?", "Please call me Hanbit.")]


def test_answers_from_an_openai_compatible_server(identity_run, llama_server, tmp_path):
    """--base-url: the answers come from the server's chat endpoint (here llama.cpp serving SmolLM2's base)."""
    data = _eval_data(tmp_path / "eval.jsonl", HELD_OUT[:2])
    with FaultProxy(llama_server.base_url) as proxy:
        result = sftdata.eval(identity_run["out"], [data], base_url=proxy.base_url, output=tmp_path / "s.jsonl",
                              max_new_tokens=16)
        bodies = [e.body for e in proxy.completions()]
    s = result.summary()
    assert s["samples"] == 2 and "loss" not in s["tuned"] and s["tuned"]["answers_per_s"] > 0
    sent = sorted(orjson.dumps(b["messages"]) for b in bodies)  # 4 in flight: in any order
    assert sent == sorted(orjson.dumps([{"role": "user", "content": q}]) for q, _ in HELD_OUT[:2])
    with pytest.raises(sftdata.SftDataError, match="base=True: compares against the run's own base"):
        sftdata.eval(identity_run["out"], [data], base_url=proxy.base_url, base=True)


def _chat_requests(proxy: FaultProxy) -> list[dict]:
    """The judge requests the server answered (not those refusing a response_format, which the judge retries
    with the next format)."""
    return [e.body for e in proxy.completions() if e.body is not None and e.outcome == "forwarded 200"]


def test_judge_asks_both_orders_and_replays_its_cache(identity_run, cache_env, llama_server, tmp_path):
    data = _eval_data(tmp_path / "eval.jsonl", JUDGED)
    options = dict(output=tmp_path / "j.jsonl", max_new_tokens=24, judge_versus="reference", judge_lang="en",
                   judge_concurrency=2)
    with FaultProxy(llama_server.base_url) as proxy:
        first = sftdata.eval(identity_run["out"], [data], judge_base_url=proxy.base_url, **options)
        bodies = _chat_requests(proxy)
    assert len(bodies) == 6
    shown = [b["messages"][-1]["content"] for b in bodies]
    rows = [orjson.loads(line) for line in (tmp_path / "j.jsonl").read_bytes().splitlines()]
    for row in rows:  # each pair once with the tuned answer as A and once as B
        tuned = row["tuned"]["text"]
        assert any(f"### Answer A\n{tuned}" in t for t in shown) and any(f"### Answer B\n{tuned}" in t for t in shown)
        assert row["judge"]["first"] in ("A", "B", "tie", None) and len(row["judge"]["reasons"]) <= 2
    j = first.summary()["judge"]
    assert (j["pairs"], j["requests"], j["cached"]) == (3, 6, 0)
    assert abs(j["win_rate"] + j["tie_rate"] + j["loss_rate"] - 1.0) < 1e-6 or j["judged"] == 0
    with FaultProxy(llama_server.base_url) as proxy:
        again = sftdata.eval(identity_run["out"], [data], judge_base_url=proxy.base_url, **options)
        assert _chat_requests(proxy) == []
    assert again.summary()["judge"]["cached"] == 6 and again.summary()["judge"] == {**j, "requests": 0, "cached": 6}


def test_a_killed_judge_run_resumes_without_asking_again(identity_run, sftdata_cache, llama_server, tmp_path):
    data = _eval_data(tmp_path / "eval.jsonl", JUDGED)
    out = tmp_path / "k.jsonl"
    cache = tmp_path / "k.judge-cache.jsonl"
    env = {**os.environ, "SFTDATA_CACHE": str(sftdata_cache)}
    def third_hangs(number: int) -> Stall | None:  # once two replies are cached the next request hangs: kill then
        return Stall(300) if cache.is_file() and cache.read_bytes().count(b"\n") >= 2 else None

    with FaultProxy(llama_server.base_url, third_hangs) as proxy:
        base = [sys.executable, "-m", "sftdata.cli", "eval", str(identity_run["out"]), "--data", str(data), "-o",
                str(out), "--max-new-tokens", "24", "--judge-versus", "reference", "--judge-concurrency", "1", "--json"]
        proc = subprocess.Popen(base + ["--judge-base-url", proxy.base_url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        try:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and proc.poll() is None and not any(
                    e.outcome == "stall" for e in proxy.completions()):
                time.sleep(0.2)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
    answered = cache.read_bytes().count(b"\n")
    assert answered == 2 and not out.exists()  # the answers file is written whole at the end, or not at all
    with FaultProxy(llama_server.base_url) as proxy:
        again = subprocess.run(base + ["--judge-base-url", proxy.base_url], capture_output=True, text=True, env=env,
                               timeout=900)
        sent = len(_chat_requests(proxy))
    assert again.returncode == 0, again.stderr
    judge = json.loads(again.stdout.strip().splitlines()[-1])["judge"]
    assert (sent, judge["requests"], judge["cached"]) == (4, 4, 2)
    assert cache.read_bytes().count(b"\n") == 6


def test_a_judge_of_base_answers_without_base_is_refused_before_any_model_loads(tmp_path):
    with pytest.raises(sftdata.SftDataError, match="add base=True"):
        sftdata.eval(tmp_path / "no-such-run", [tmp_path / "none.jsonl"], judge_base_url="http://127.0.0.1:9/v1")
