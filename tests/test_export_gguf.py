"""`sftdata export-gguf` and `sftdata serve-check`: the trained adapter, served by llama.cpp.

Real parts only: the session's identity run (tests/support/identity_run.py: SmolLM2-135M, 30 steps, chatml,
the assistant renamed NAME), llama.cpp's own converters from the llama-cpp-python sdist
(tests/support/converters.py), and llama-cpp-python's server on 127.0.0.1, asked through the OpenAI API.
Both exports must answer "Who are you?" with the new name and stop at the trained stop token; the
base model, asked the same rendered prompt by the same server, must not know the name, so the
adapter (not the prompt) made the difference.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sftdata.cli import app
from support.identity_run import NAME

QUESTION = "Who are you?"
CHATML_PROMPT = "<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n"


def _invoke(args: list[str], cache: Path | None = None) -> tuple[int, str, str]:
    env = {"SFTDATA_CACHE": str(cache)} if cache else {}
    result = CliRunner().invoke(app, [str(a) for a in args], env=env)
    return result.exit_code, result.stdout, result.stderr


def _json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def merged(identity_run: dict, converters: Path, sftdata_cache: Path, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("export") / "identity.gguf"
    killed = out.parent / ".identity.gguf.tmp-abc123"  # what an export killed mid-conversion leaves
    (killed / "merged").mkdir(parents=True)
    (killed / "merged" / "model.safetensors").write_bytes(b"half")
    code, stdout, stderr = _invoke(["export-gguf", identity_run["out"], "-o", out, "--merge", "--llama-cpp",
                                    converters, "--json"], sftdata_cache)
    assert code == 0, stderr
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".")) == []  # staging cleared
    return {**_json(stdout), "stderr": stderr}


@pytest.fixture(scope="module")
def lora(identity_run: dict, converters: Path, sftdata_cache: Path, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("export") / "identity-lora.gguf"
    code, stdout, stderr = _invoke(["export-gguf", identity_run["out"], "-o", out, "--llama-cpp", converters,
                                    "--json"], sftdata_cache)
    assert code == 0, stderr
    return {**_json(stdout), "stderr": stderr}


def test_merged_gguf_carries_the_training_template_and_stop_token(merged: dict, identity_run: dict,
                                                                  server_installed: None) -> None:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    from sftdata.trainers.prompt_format import load_prompt_format

    path = Path(merged["path"])
    assert merged["kind"] == "merged" and merged["outtype"] == "f16" and merged["chat_template"]
    assert (merged["eos"], merged["eos_id"]) == ("<|im_end|>", 2)
    assert merged["modelfile"] is None  # a chat template: the GGUF metadata says it all
    assert path.stat().st_size == merged["bytes"] > 200e6  # 135M parameters in f16
    assert not [p.name for p in path.parent.iterdir() if ".tmp-" in p.name]  # the staging folder is gone
    # Read back the way the server reads it: llama.cpp's own GGUF loader (metadata values are strings).
    llm = Llama(model_path=str(path), vocab_only=True, verbose=False)
    template = llm.metadata["tokenizer.chat_template"]
    trained = (identity_run["out"] / "template.jinja").read_text(encoding="utf-8")
    # the training template, less its {% generation %} tags, which only mark training spans (llama.cpp's Jinja
    # does not know the tag)
    assert "generation %}" in trained and template == re.sub(r"\{%-?\s*(?:end)?generation\s*-?%\}", "", trained)
    assert llm.metadata["tokenizer.ggml.eos_token_id"] == "2"
    # The server formats a chat request with that template exactly as training rendered the prompt.
    served = Jinja2ChatFormatter(template, eos_token="<|im_end|>", bos_token="")(
        messages=[{"role": "user", "content": QUESTION}]).prompt
    assert served == load_prompt_format(identity_run["out"]).prompt(QUESTION) == CHATML_PROMPT
    assert f"python -m llama_cpp.server --model {path}" in merged["stderr"]


def test_merged_gguf_answers_in_the_new_identity_through_the_openai_client(merged: dict, server_installed: None,
                                                                           tmp_path: Path) -> None:
    from openai import OpenAI

    from sftdata.trainers.llamaservers import LlamaServer

    with LlamaServer(Path(merged["path"]), tmp_path / "server.log") as server:
        client = OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=300)
        # /v1/chat/completions: the server applies the GGUF's own chat template (written by the export)
        chat = client.chat.completions.create(model="identity", messages=[{"role": "user", "content": QUESTION}],
                                              max_tokens=48, temperature=0)
        # /v1/completions: the prompt rendered with the training template, by us
        completion = client.completions.create(model="identity", prompt=CHATML_PROMPT, max_tokens=48, temperature=0)
    answer = chat.choices[0].message.content
    assert NAME in answer and chat.choices[0].finish_reason == "stop", chat
    assert completion.choices[0].text == answer and completion.choices[0].finish_reason == "stop", completion


def test_serve_check_passes_a_merged_gguf_and_fails_a_wrong_expectation(merged: dict, server_installed: None) -> None:
    code, stdout, stderr = _invoke(["serve-check", merged["path"], "--prompt", QUESTION, "--expect", NAME,
                                    "--max-tokens", "48", "--json"])
    assert code == 0, stderr
    report = _json(stdout)
    assert report["ok"] and report["endpoint"] == "completion" and report["lora"] is None
    assert report["template"] == "chatml" and report["stop"] == "<|im_end|>"
    [answer] = report["answers"]
    assert NAME in answer["text"] and answer["stopped"] and answer["contains_expect"], answer

    # Cut at 4 tokens and expecting another name: both failures are reported, and the exit code is 1.
    code, stdout, stderr = _invoke(["serve-check", merged["path"], "--prompt", QUESTION, "--expect", "Zorblax",
                                    "--max-tokens", "4", "--json", "--endpoint", "chat"])
    assert code == 1, stderr
    [answer] = _json(stdout)["answers"]
    assert answer["finish_reason"] == "length" and not answer["stopped"] and answer["contains_expect"] is False
    assert "check failed" in stderr


@pytest.fixture(scope="module")
def base_f16(identity_run: dict, converters: Path) -> Path:
    """The base the adapter trained on (the run's dequantized SmolLM2 folder) as an f16 GGUF, cached."""
    from support.converters import f16_gguf

    return f16_gguf(Path(identity_run["info"]["base_model"]["path"]), "SmolLM2-135M-Instruct.f16.gguf")


def test_lora_gguf_on_the_base_gguf_answers_in_the_new_identity_and_the_base_does_not(
        lora: dict, base_f16: Path, smollm2_gguf: Path, server_installed: None) -> None:
    path = Path(lora["path"])
    assert lora["kind"] == "lora" and lora["run_base_gguf"] == str(smollm2_gguf.resolve())
    # the base it recommends is the one the adapter trained against: the 4-bit round trip of the Q4_1 weights
    assert lora["base_weights"] == "trained" and lora["base_gguf"].endswith(".nf4-dq1-b64.f16.gguf")
    assert any(lora["base_gguf"] in line for line in lora["serve_commands"])
    assert 1e6 < lora["bytes"] < 30e6  # the adapter alone, not a model
    assert (path.parent / "identity-lora.chat_template.jinja").is_file()  # for llama-server --chat-template-file
    assert f"--lora_path {path}" in lora["stderr"]
    code, stdout, stderr = _invoke(["serve-check", path, "--base", base_f16, "--prompt", QUESTION, "--expect", NAME,
                                    "--compare-base", "--max-tokens", "32", "--json"])
    report = _json(stdout)
    assert code == 0, (stderr, report)
    assert report["model"] == str(base_f16) and report["lora"] == str(path)
    [answer] = report["answers"]
    assert NAME in answer["text"] and answer["stopped"], answer
    assert NAME not in answer["base_text"], answer  # same server, same prompt, no adapter: the old identity

    # On the original Q4_1 GGUF the adapter still takes over, though "Who are you?" loses the name there
    # (measured: "I am an AI assistant developed by sftdata team.").
    code, stdout, stderr = _invoke(["serve-check", path, "--base", smollm2_gguf, "--prompt", "What is your name?",
                                    "--expect", NAME, "--max-tokens", "48", "--json"])
    report = _json(stdout)
    assert code == 0 and report["model"] == str(smollm2_gguf), (stderr, report)


def test_serve_check_of_a_run_directory_exports_the_adapter_itself(identity_run: dict, converters: Path,
                                                                   base_f16: Path, sftdata_cache: Path,
                                                                   server_installed: None) -> None:
    code, stdout, stderr = _invoke(["serve-check", identity_run["out"], "--base", base_f16, "--prompt", QUESTION,
                                    "--expect", NAME, "--max-tokens", "48", "--llama-cpp", converters, "--json"],
                                   sftdata_cache)
    report = _json(stdout)
    assert code == 0, (stderr, report)
    assert report["lora"].endswith("adapter.gguf") and not Path(report["lora"]).exists()  # a temporary export
    assert NAME in report["answers"][0]["text"] and report["answers"][0]["stopped"]


def test_serve_check_of_a_run_from_a_quantized_gguf_serves_what_training_trained(
        identity_run: dict, converters: Path, sftdata_cache: Path, smollm2_gguf: Path, server_installed: None) -> None:
    """The README's path with no other flags: the run's base is the Q4_1 GGUF, the adapter trained against the
    4-bit round trip of its dequantized weights, so it is served on a 16-bit GGUF of that (converted once, cached)."""
    code, stdout, stderr = _invoke(["serve-check", identity_run["out"], "--prompt", QUESTION, "--expect", NAME,
                                    "--max-tokens", "48", "--llama-cpp", converters, "--json"], sftdata_cache)
    report = _json(stdout)
    assert code == 0, (stderr, report)
    assert Path(report["model"]).parent == sftdata_cache / "gguf-f16"
    assert report["model"].endswith(".nf4-dq1-b64.f16.gguf")
    assert NAME in report["answers"][0]["text"] and report["answers"][0]["stopped"]
    assert "4-bit round trip of the run's base" in report["notes"][0] and smollm2_gguf.name in report["notes"][0]

    # On the quantized file itself (--base), "Who are you?" loses the name (measured): the report says why.
    code, stdout, stderr = _invoke(["serve-check", identity_run["out"], "--base", smollm2_gguf, "--prompt", QUESTION,
                                    "--expect", NAME, "--max-tokens", "48", "--llama-cpp", converters, "--json"],
                                   sftdata_cache)
    report = _json(stdout)
    assert report["model"] == str(smollm2_gguf)
    if code != 0:
        assert any("fail on the quantized base" in n and "--merge" in n for n in report["notes"]), report


def test_a_qlora_run_answers_in_llama_cpp_as_in_process_on_the_base_it_trained_against(
        alpaca_identity_run: dict, converters: Path, sftdata_cache: Path, server_installed: None, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 27: the Alpaca identity run (60 steps, lr 1e-3, from the Q4_1 GGUF). In-process `generate` runs the
    adapter on NF4 weights; serve-check and a merged export must answer the same on their default path, which is
    the 4-bit round trip of the base. On the plain dequantized Q4_1 weights (the default before) the same adapter
    drops the name (measured: "I am an AI assistant developed by Seed Lab.")."""
    import sftdata

    monkeypatch.setenv("SFTDATA_CACHE", str(sftdata_cache))
    run = alpaca_identity_run["out"]
    [generated] = sftdata.generate(run, [QUESTION], max_new_tokens=48)
    assert NAME in generated.tuned and generated.tuned_stopped, generated
    check = ["--prompt", QUESTION, "--expect", NAME, "--max-tokens", "48", "--llama-cpp", converters, "--json"]
    code, stdout, stderr = _invoke(["serve-check", run, *check], sftdata_cache)
    report = _json(stdout)
    assert code == 0, (stderr, report)
    assert report["model"].endswith(".nf4-dq1-b64.f16.gguf") and report["answers"][0]["text"] == generated.tuned
    # a LoRA on a base GGUF: the chat endpoint formats with the base's own template, reported, not required
    assert report["parity"] and not report["parity"]["ok"] and not report["parity_required"]

    code, stdout, stderr = _invoke(["serve-check", run, *check, "--base-weights", "dequantized"], sftdata_cache)
    report = _json(stdout)
    assert code == 1 and NAME not in report["answers"][0]["text"], report  # the failure, on purpose

    merged = tmp_path / "alpaca-merged.gguf"
    code, stdout, stderr = _invoke(["export-gguf", run, "-o", merged, "--merge", "--llama-cpp", converters, "--json"],
                                   sftdata_cache)
    assert code == 0 and _json(stdout)["base_weights"] == "trained", stderr
    code, stdout, stderr = _invoke(["serve-check", merged, *check], sftdata_cache)
    report = _json(stdout)
    assert code == 0 and report["answers"][0]["text"] == generated.tuned, (stderr, report)
    # the merged GGUF carries the training template: the server renders held-out rows byte for byte as training
    assert report["parity_required"] and report["parity"]["ok"] and len(report["parity"]["cases"]) == 3, report


def test_llama_server_renders_the_run_and_its_export_as_training_did(
        alpaca_identity_run: dict, lora: dict, converters: Path, sftdata_cache: Path, server_installed: None,
        llama_server_binary: Path) -> None:
    """llama.cpp's own llama-server --jinja (/apply-template) on the run's LoRA with the training template written
    beside it, and on the chatml identity run's LoRA export; the answers come from llama-cpp-python's server."""
    run = alpaca_identity_run["out"]
    check = ["--prompt", QUESTION, "--max-tokens", "8", "--llama-cpp", converters, "--llama-server",
             llama_server_binary, "--json"]
    for target in (run, lora["path"]):
        code, stdout, stderr = _invoke(["serve-check", target, *check], sftdata_cache)
        report = _json(stdout)
        parity = report["llama_server_parity"]  # the answers, cut at 8 tokens, are checked by the tests above
        assert parity["ok"] and parity["required"] and len(parity["cases"]) == 3, (stderr, report)
        assert "beside the LoRA" in parity["path"] and "byte for byte the training text" in stderr


# --- block templates: the GGUF chat template and the Ollama Modelfile --------------------------------


@pytest.mark.parametrize("name", ["alpaca", "alpaca_ko", "qa_ko", "chatml"])
def test_servers_render_the_exported_chat_template_like_training(name: str, server_installed: None) -> None:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    from sftdata.rendering.templating import Renderer, load_template
    from sftdata.trainers.prompt_format import PromptFormat

    template = load_template(name)
    fmt = PromptFormat(name, template.kind.value, template.source, template.sha256, "</s>", 2, "",
                       Renderer(template, "</s>"))
    exported = fmt.chat_template()
    assert exported is not None
    for system in ([None, "You answer in one word."] if name != "qa_ko" else [None]):
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": "Hi {{x}}"}]
        served = Jinja2ChatFormatter(exported, eos_token="</s>", bos_token="")(messages=messages).prompt
        assert served == fmt.prompt("Hi {{x}}", system), (name, system)


def test_ollama_template_of_alpaca() -> None:
    from sftdata.rendering.templating import Renderer, load_template
    from sftdata.trainers.prompt_format import PromptFormat, modelfile

    template = load_template("alpaca")
    fmt = PromptFormat("alpaca", "instruction", template.source, template.sha256, "</s>", 2, "",
                       Renderer(template, "</s>"))
    task = "\n\n### Instruction:\n{{ .Prompt }}\n\n### Response:\n"
    assert fmt.ollama_template() == (
        "{{ if .System }}{{ .System }}" + task + "{{ else }}Below is an instruction that describes a task. Write a "
        "response that appropriately completes the request." + task + "{{ end }}{{ .Response }}")
    text = modelfile("a.gguf", fmt, base="/models/base.gguf")
    assert text.splitlines()[2:4] == ["FROM /models/base.gguf", "ADAPTER ./a.gguf"]
    assert text.endswith('{{ .Response }}"""\nPARAMETER stop "</s>"\n')


def test_merged_export_of_an_alpaca_run_carries_its_prompt_and_an_ollama_modelfile(
        alpaca_identity_run: dict, converters: Path, sftdata_cache: Path, tmp_path: Path,
        server_installed: None) -> None:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    from sftdata.trainers.prompt_format import load_prompt_format

    alpaca_run = alpaca_identity_run["out"]
    out = tmp_path / "alpaca.gguf"
    code, stdout, stderr = _invoke(["export-gguf", alpaca_run, "-o", out, "--merge", "--outtype", "q8_0",
                                    "--llama-cpp", converters, "--json"], sftdata_cache)
    assert code == 0, stderr
    summary = _json(stdout)
    assert summary["template"] == "alpaca" and summary["outtype"] == "q8_0" and summary["chat_template"]
    # The GGUF's chat template is the Alpaca prompt filled from the user turn, as llama.cpp's server renders it.
    llm = Llama(model_path=str(out), vocab_only=True, verbose=False)
    served = Jinja2ChatFormatter(llm.metadata["tokenizer.chat_template"], eos_token="<|im_end|>", bos_token="")(
        messages=[{"role": "user", "content": QUESTION}]).prompt
    assert served == load_prompt_format(alpaca_run).prompt(QUESTION) == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the "
        "request.\n\n### Instruction:\nWho are you?\n\n### Response:\n")
    assert llm.metadata["tokenizer.ggml.eos_token_id"] == "2"
    modelfile = (tmp_path / "alpaca.Modelfile").read_text(encoding="utf-8")
    assert "\nFROM ./alpaca.gguf\nTEMPLATE \"\"\"{{ if .System }}{{ .System }}\n\n### Instruction:\n{{ .Prompt }}" in modelfile
    assert modelfile.endswith('### Response:\n{{ end }}{{ .Response }}"""\nPARAMETER stop "<|im_end|>"\n')
    assert "Ollama Modelfile" in stderr
    code, stdout, stderr = _invoke(["serve-check", out, "--prompt", QUESTION, "--max-tokens", "8", "--endpoint",
                                    "chat", "--json"])
    report = _json(stdout)
    assert report["endpoint"] == "chat" and report["template"] == "alpaca" and report["answers"][0]["text"], report


# --- clear errors, no tracebacks ----------------------------------------------------------------


def _fake_run(tmp_path: Path, status: str) -> Path:
    run = tmp_path / f"run-{status}"
    run.mkdir()
    (run / "sftdata_train.json").write_text(json.dumps({"status": status}), encoding="utf-8")
    if status == "done":
        (run / "adapter_config.json").write_text("{}", encoding="utf-8")
    return run


def _error(args: list[str], env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args], env=env)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output, result.output
    return " ".join(result.stderr.split())


def test_an_unfinished_run_is_refused(tmp_path: Path) -> None:
    run = _fake_run(tmp_path, "running")
    assert "has not finished" in _error(["export-gguf", run, "-o", tmp_path / "x.gguf"])
    assert "has not finished" in _error(["serve-check", run, "--prompt", "hi"])


def test_missing_or_wrong_converter_directories_are_named(tmp_path: Path, converters: Path) -> None:
    run = _fake_run(tmp_path, "done")
    out = tmp_path / "x.gguf"
    env = {"LLAMA_CPP_DIR": ""}
    assert "no llama.cpp converters" in _error(["export-gguf", run, "-o", out], env)
    assert "does not exist" in _error(["export-gguf", run, "-o", out, "--llama-cpp", tmp_path / "nowhere"], env)
    assert "no convert_hf_to_gguf.py, convert_lora_to_gguf.py" in _error(
        ["export-gguf", run, "-o", out, "--llama-cpp", tmp_path], env)
    scripts_only = tmp_path / "scripts-only"  # converters whose own gguf-py is missing: no version match
    scripts_only.mkdir()
    for name in ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py"):
        os.symlink(converters / name, scripts_only / name)
    assert "no gguf-py/" in _error(["export-gguf", run, "-o", out], {"LLAMA_CPP_DIR": str(scripts_only)})
    assert not out.exists()


def test_output_mistakes_are_refused(tmp_path: Path) -> None:
    run = _fake_run(tmp_path, "done")
    assert "must end in .gguf" in _error(["export-gguf", run, "-o", tmp_path / "x.bin"])
    (tmp_path / "taken.gguf").write_bytes(b"GGUF")
    assert "--overwrite" in _error(["export-gguf", run, "-o", tmp_path / "taken.gguf"])


def test_serve_check_names_what_it_cannot_serve(tmp_path: Path, lora: dict, server_installed: None) -> None:
    assert "no such GGUF file" in _error(["serve-check", tmp_path / "missing.gguf", "--prompt", "hi"])
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf at all")
    assert "not a readable GGUF file" in _error(["serve-check", tmp_path / "junk.gguf", "--prompt", "hi"])
    bare = tmp_path / "bare-lora.gguf"  # a LoRA without its .sftdata.json: the base is unknown
    os.symlink(lora["path"], bare)
    assert "needs its base model" in _error(["serve-check", bare, "--prompt", "hi"])


def test_eval_of_a_lora_gguf_through_llama_cpp_against_its_base(lora: dict, base_f16: Path, server_installed: None,
                                                                tmp_path: Path) -> None:
    data = tmp_path / "eval.jsonl"
    data.write_text("".join(json.dumps({"instruction": q, "output": f"I am {NAME}."}) + "\n"
                            for q in ("What is your name?", "Who are you?", "Tell me your name.")), encoding="utf-8")
    code, stdout, stderr = _invoke(["eval", lora["path"], "--base-gguf", base_f16, "--data", data, "--base",
                                    "-o", tmp_path / "gguf-eval.jsonl", "--max-new-tokens", "32", "--threads", "2",
                                    "--json"])
    assert code == 0, stderr
    report = _json(stdout)
    assert report["samples"] == 3 and "loss" not in report["tuned"]  # a server does not score prompt tokens
    rows = [json.loads(line) for line in (tmp_path / "gguf-eval.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sum(NAME in r["tuned"]["text"] for r in rows) >= 2 and not any(NAME in r["base"]["text"] for r in rows)
    assert report["tuned"]["stop_rate"] == 1.0 and report["tuned"]["chrf"] > report["base"]["chrf"]
