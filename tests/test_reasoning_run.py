"""Reasoning data end to end on a real model: Korean chats with reasoning_content → `train` with Qwen3's own
chat template (SmolLM2's tokenizer shares its ChatML tokens) → `serve-check` of the run with llama.cpp (15 CPU steps: the loss is near 0 by step 13).

The run trains the think block the template renders for the last turn; serve-check renders the prompt with
the same template and arguments (ending at `<|im_start|>assistant\\n`, where a thinking model opens its
block) and the answer comes back in the trained format: a think block, then the answer, stopped at
`<|im_end|>`.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sftdata.cli import app

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "chat_templates"
NAME = "한빛"
QUESTIONS = ["너는 누구야?", "이름이 뭐야?", "자기소개 해 줘.", "누가 너를 만들었어?", "당신은 누구인가요?",
             "어떤 도우미야?", "네 이름을 알려 줘.", "너에 대해 말해 줘."]


def _invoke(args: list, cache: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args], env={"SFTDATA_CACHE": str(cache)})
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def reasoning_run(smollm2_gguf: Path, sftdata_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("reasoning") / "think.jsonl"
    rows = [{"messages": [{"role": "user", "content": q},
                          {"role": "assistant", "content": f"저는 {NAME}입니다. sftdata 팀이 만든 도우미예요.",
                           "reasoning_content": "사용자가 나에 대해 묻는다. 이름을 말하자."}]}
            for q in QUESTIONS]
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out = data.parent / "run"
    code, stdout, stderr = _invoke(["train", data, "--model", smollm2_gguf, "-o", out, "--config", "cpu-smoke",
                                    "--template", SHARED / "qwen3.jinja", "--train-on", "last", "--max-steps", 15,
                                    "--lr", "2e-3", "--batch-size", 8, "--json"], sftdata_cache)
    assert code == 0, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])  # --json: stdout holds the summary line alone
    assert summary["samples"] == len(QUESTIONS) and summary["final_loss"] < summary["first_loss"]
    return out


def test_the_run_records_the_template_its_stop_token_and_the_turn_policy(reasoning_run: Path) -> None:
    info = json.loads((reasoning_run / "sftdata_train.json").read_text(encoding="utf-8"))
    assert info["template"]["name"] == "qwen3" and info["eos"] == "<|im_end|>"
    assert info["template"]["train_on"] == "last"
    assert (reasoning_run / "template.jinja").read_text(encoding="utf-8") == (SHARED / "qwen3.jinja").read_text(
        encoding="utf-8")


@pytest.mark.llama_server  # serve-check starts llama.cpp's server in its body (reasoning_run marks it train)
def test_serve_check_answers_in_the_trained_format(reasoning_run: Path, sftdata_cache: Path) -> None:
    from support.converters import llama_cpp_dir
    from support.llama_server import ensure_installed

    ensure_installed()
    code, stdout, stderr = _invoke(["serve-check", reasoning_run, "--prompt", QUESTIONS[0], "--expect", NAME,
                                    "--max-tokens", "160", "--llama-cpp", llama_cpp_dir(), "--json"], sftdata_cache)
    report = json.loads(stdout.strip().splitlines()[-1])
    assert code == 0, (stderr, report)
    [answer] = report["answers"]
    assert answer["rendered_prompt"].endswith("<|im_start|>assistant\n")  # where the model opens its think block
    assert answer["text"].lstrip().startswith("<think>") and "</think>" in answer["text"], answer
    assert NAME in answer["text"].split("</think>", 1)[1] and answer["stopped"], answer
