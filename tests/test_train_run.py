"""`sftdata train` end to end on a real model on CPU: SmolLM2-135M-Instruct (GGUF from PyPI).

One training run (the session's, from tests/support/identity_run.py: through the CLI, from the .gguf file, on
the shared identity.json with its {{name}}/{{author}} placeholders filled in as data preparation)
serves every test: the loss falls, the output directory holds what it should, the adapter reloads
and `generate` answers "Who are you?" with the new name and stops at the EOS, and `merge` gives a
model that loads without peft.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sftdata import templates as registry
from sftdata.cli import app
from support.identity_run import NAME, STEPS


@pytest.fixture(scope="module")
def run(identity_run: dict) -> dict:
    """The session's identity run (tests/support/identity_run.py), trained once and shared with test_export_gguf."""
    return identity_run


def test_loss_goes_down(run: dict) -> None:
    losses = [e["loss"] for e in json.loads((run["out"] / "metrics.json").read_text())["train"]]
    assert len(losses) == STEPS and run["summary"]["steps"] == STEPS
    first, last = sum(losses[:3]) / 3, sum(losses[-5:]) / 5
    assert last < 0.6 * first, losses


def test_output_directory(run: dict) -> None:
    out, info = run["out"], run["info"]
    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()
    assert not [p.name for p in out.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl")]  # no pickle
    chatml = registry.BUILTIN["chatml"].path.read_text(encoding="utf-8")
    assert (out / "template.jinja").read_text(encoding="utf-8") == chatml
    assert info["template"]["name"] == "chatml"
    assert info["template"]["sha256"] == hashlib.sha256(chatml.encode()).hexdigest()
    assert (info["eos"], info["eos_id"]) == ("<|im_end|>", 2)
    assert info["pad_distinct_from_eos"] and info["pad_id"] != info["eos_id"]
    assert info["data"]["sources"][0]["sha256"] == hashlib.sha256(run["records"].read_bytes()).hexdigest()
    assert info["data"]["counts"] == {"read": 91, "used": 91}
    assert info["base_model"]["kind"] == "gguf" and info["status"] == "done"
    assert info["config"]["max_steps"] == STEPS and info["config"]["padding_free"]
    assert "max_steps: 30" in (out / "config.yaml").read_text(encoding="utf-8")
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "chatml" in (out / "README.md").read_text() and "sftdata generate" in (out / "README.md").read_text()
    kept = sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*"))
    assert kept == ["checkpoint-20", "checkpoint-30"]  # every 10 steps, the last 2 kept
    tokenizer_config = json.loads((out / "tokenizer_config.json").read_text())
    assert tokenizer_config.get("pad_token") == info["pad"]


def test_generate_names_the_new_assistant_and_stops(run: dict, sftdata_cache: Path) -> None:
    args = ["generate", str(run["out"]), "--prompt", "Who are you?", "--prompt", "What is your name?",
            "--max-new-tokens", "48", "--compare-base", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    answers = [json.loads(line) for line in result.stdout.strip().splitlines()]
    for answer in answers:
        assert NAME in answer["tuned"], answer
        assert answer["tuned_stopped"], answer  # ended with the trained EOS, not at max_new_tokens
        assert NAME not in (answer["base"] or "")


def test_prompt_is_rendered_with_the_training_template(run: dict) -> None:
    from sftdata.tokenize.load import load_tokenizer
    from sftdata.trainers.infer import _renderer
    from sftdata.trainers.outputs import read_info

    renderer, _ = _renderer(run["out"], read_info(run["out"]), load_tokenizer(run["out"]))
    assert renderer.template.name == "chatml" and renderer.eos == "<|im_end|>"


def test_merge_loads_without_peft(run: dict, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged = tmp_path / "merged"
    result = CliRunner().invoke(app, ["merge", str(run["out"]), "-o", str(merged)])
    assert result.exit_code == 0, result.output
    assert list(merged.glob("*.safetensors")) and not list(merged.glob("adapter_*"))
    model = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32)
    assert not any("lora" in name for name, _ in model.named_parameters())
    tokenizer = AutoTokenizer.from_pretrained(merged)
    prompt = "<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n"
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=24, do_sample=False, eos_token_id=2, pad_token_id=tokenizer.pad_token_id)
    assert NAME in tokenizer.decode(out[0, ids["input_ids"].shape[1]:])
