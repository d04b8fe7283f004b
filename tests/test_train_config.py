"""TrainConfig, presets, overrides, model sources and the safety checks: fast, no model weights."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sftdata.cli import app
from sftdata.errors import SftDataError, TrainError, option
from sftdata.trainers import checks
from sftdata.trainers.config import TrainConfig, flag_of, presets, resolve_config
from sftdata.trainers.models import check_safetensors, resolve_model


def test_presets_ship_the_reference_setups() -> None:
    assert {"t4-8b", "a100-8b", "cpu-smoke"} <= set(presets())
    t4 = resolve_config("t4-8b")
    assert (t4.load_in_4bit, t4.lora_r, t4.lora_alpha, t4.lora_dropout) == (True, 16, 16, 0.0)
    assert (t4.batch_size, t4.grad_accum, t4.learning_rate, t4.lr_scheduler) == (2, 4, 2e-4, "linear")
    assert (t4.precision, t4.optim) == ("fp16", "adamw_8bit")
    a100 = resolve_config("a100-8b")
    assert (a100.quant_type, a100.precision, a100.lora_r, a100.lora_alpha, a100.lora_dropout) == ("nf4", "bf16", 64, 128, 0.05)
    assert (a100.target_modules, a100.batch_size, a100.grad_accum, a100.learning_rate) == ("all-linear", 4, 8, 2e-4)
    assert a100.gradient_checkpointing
    smoke = resolve_config("cpu-smoke")
    assert smoke.precision == "fp32" and smoke.padding_free and smoke.group_by_length


def test_every_field_is_described_and_has_a_flag() -> None:
    for name, field in TrainConfig.model_fields.items():
        assert field.description, name
        assert flag_of(name).startswith("--")
    assert flag_of("learning_rate") == "--lr" and flag_of("lora_r") == "--lora-r"


def test_training_flags_parse_into_the_config_through_the_cli() -> None:
    """The options `train` and `plan` take for TrainConfig fields, parsed by the CLI built from the registry (each
    field's own flag, `--no-` for booleans, a comma list for target modules), give the config they name."""
    import typer

    from sftdata.api.train import _overrides
    from sftdata.cli import app

    plan = typer.main.get_command(app).commands["plan"]
    given = plan.make_context("plan", ["--model", "m.gguf", "--lora-r", "32", "--lr=1e-4", "--packing",
                                       "--no-group-by-length", "--target-modules", "q_proj,v_proj", "--max-steps", "7"])
    parsed = {k: v for k, v in given.params.items() if k in TrainConfig.model_fields and v is not None}
    assert parsed == {"lora_r": 32, "learning_rate": 1e-4, "packing": True, "group_by_length": False,
                      "target_modules": "q_proj,v_proj", "max_steps": 7}
    config = resolve_config("t4-8b", _overrides(parsed))
    assert (config.lora_r, config.learning_rate, config.max_steps, config.target_modules) == (32, 1e-4, 7, ["q_proj", "v_proj"])
    assert (config.packing, config.group_by_length) == (True, False)


@pytest.mark.parametrize("overrides, name, flag", [
    ({"lora_r": 0}, "lora_r", "--lora-r"),
    ({"learning_rate": -1}, "learning_rate", "--lr"),
    ({"lr_scheduler": "constant", "warmup_ratio": 0.1}, "warmup_ratio", "--warmup-ratio"),
    ({"padding_free": True, "packing": False, "batch_size": 1}, "padding_free", "--padding-free"),
    ({"max_steps": None, "epochs": 0}, "epochs", "--epochs"),
    ({"optim": "sgd"}, "optim", "--optim"),
])
def test_invalid_values_name_the_option(overrides: dict, name: str, flag: str) -> None:
    """A notebook sees the keyword (`learning_rate=-1: …`), the command line the flag (`--lr -1: …`)."""
    from sftdata.api.registry import COMMANDS

    with pytest.raises(SftDataError) as raised:
        resolve_config("cpu-smoke", overrides)
    assert f"{name}=" in str(raised.value) and "--" not in str(raised.value), str(raised.value)
    assert flag in raised.value.said(COMMANDS["train"].flag)


def test_config_files_and_unknown_fields(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(resolve_config("cpu-smoke", {"lora_r": 4}).to_yaml(), encoding="utf-8")
    assert resolve_config(path).lora_r == 4  # the resolved config a run writes loads back
    path.write_text("lora_rank: 8\n", encoding="utf-8")
    with pytest.raises(TrainError, match="unknown config field 'lora_rank'"):
        resolve_config(path)
    with pytest.raises(TrainError, match="no preset or config file"):
        resolve_config("t5-xxl")


def test_pickle_only_model_dirs_are_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(TrainError, match="only pickle weights"):
        resolve_model(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"")
    check_safetensors(tmp_path)
    with pytest.raises(TrainError, match="no such GGUF"):
        resolve_model(tmp_path / "missing.gguf")
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct").kind == "hub"


def test_pad_is_chosen_distinct_from_eos(smollm2_tokenizer_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    assert tokenizer.pad_token == tokenizer.eos_token  # SmolLM2 ships pad = EOS
    pad, distinct = checks.choose_pad(tokenizer, tokenizer.eos_token)
    assert distinct and pad != tokenizer.eos_token and tokenizer.pad_token_id != tokenizer.eos_token_id


class _Leaky:
    """A 'model' whose token states mix every earlier token, ignoring position_ids: packing leaks."""

    def __init__(self) -> None:
        import torch

        self.config, self.training, self.weight = type("C", (), {"_attn_implementation": "toy"})(), False, torch.zeros(1)

    def parameters(self):
        yield self.weight

    def eval(self):
        return self

    def train(self, mode: bool = True):
        return self

    def __call__(self, input_ids, **kwargs):
        import torch

        states = input_ids.float().cumsum(-1).unsqueeze(-1).repeat(1, 1, 4)
        return type("O", (), {"logits": torch.sin(states)})()


def test_leaky_attention_is_refused(smollm2_tokenizer_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    checks.choose_pad(tokenizer, tokenizer.eos_token)
    with pytest.raises(TrainError, match="packing=True would let samples attend to each other"):
        checks.check_no_leakage(_Leaky(), tokenizer, option("packing", True))


def test_label_check_catches_an_untrained_eos() -> None:
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    masks = [[0, 0, 1, 1], [0, 1, 1]]
    ids = [[5, 6, 7, 2], [5, 8, 2]]

    class Trainer:
        data_collator = DataCollatorForLanguageModeling(pad_token_id=0)
        train_dataset = [{"input_ids": i, "labels": [t if m else -100 for t, m in zip(i, k)]} for i, k in zip(ids, masks)]

    checks.verify_labels(Trainer(), masks, {2}, packed=False)
    Trainer.train_dataset[1]["labels"][-1] = -100  # EOS masked out, as pad = EOS bugs do
    with pytest.raises(TrainError):
        checks.verify_labels(Trainer(), masks, {2}, packed=False)


def test_fp16_on_cpu_names_the_flag() -> None:
    import torch

    from sftdata.trainers.qlora import pick_device

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(SftDataError, match="precision='fp16': needs a CUDA GPU"):
        pick_device(resolve_config("t4-8b"))
    assert pick_device(resolve_config("cpu-smoke")) == ("cpu", "fp32")


def test_cli_lists_training_options_and_plans(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for flag in ("--lora-r", "--lr", "--max-steps", "--packing", "--resume", "--config"):
        assert flag in result.output
    config = {"vocab_size": 32000, "hidden_size": 4096, "num_hidden_layers": 32, "intermediate_size": 11008,
              "num_attention_heads": 32, "num_key_value_heads": 32}
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    result = runner.invoke(app, ["plan", "--model", str(tmp_path), "--config", "t4-8b", "--gpu", "t4", "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout.splitlines()[0])
    assert plan["fits"] is True and plan["recommended_batch"] * plan["recommended_grad_accum"] == 8
    bad = runner.invoke(app, ["plan", "--model", str(tmp_path), "--lora-r", "0"])
    assert bad.exit_code == 2 and "--lora-r" in bad.output
