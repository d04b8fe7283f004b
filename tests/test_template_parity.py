"""Template parity on a real llama.cpp server: the prompt llama-cpp-python's server builds from a GGUF's chat
template, byte for byte against the text training rendered (sftdata.trainers.parity).

Real parts: SmolLM2-135M's GGUF given each exported chat template by llama.cpp's own gguf_new_metadata.py (from
the llama-cpp-python sdist, tests/support/converters.py), served by llama-cpp-python's server on 127.0.0.1 and
asked on its chat endpoint, whose prompt token count must match the compared text; SmolLM2's real tokenizer on
the training side; the built-in templates and two real templates with arguments from ../shared/data/chat_templates
(Qwen3 with enable_thinking=false, Llama 3.2 with date_string). The same GGUFs are also served by llama.cpp's own
`llama-server --jinja`, built from the same sdist's sources (tests/support/llama_cpp_server.py), whose
/apply-template endpoint must return the training text too.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

INSTRUCTIONS = [{"instruction": "Who are you?", "output": "I am Hanbit."},
                {"instruction": "Name three colours.", "output": "Red, green, blue.", "system": "Be brief."},
                {"instruction": "Translate", "input": "bonjour", "output": "hello"}]  # an input: no chat form
QAS = [{"question": "한국의 수도는?", "answer": "서울입니다."}, {"question": "1+1?", "answer": "2"}]
CHATS = [{"messages": [{"role": "system", "content": "You are Hanbit."}, {"role": "user", "content": "Hi {{x}}"},
                       {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "안녕?"},
                       {"role": "assistant", "content": "네, 안녕하세요."}]},
         {"messages": [{"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "Hanbit."}]}]
TEMPLATES = Path(__file__).resolve().parents[2] / "shared" / "data" / "chat_templates"

CASES = {  # name: (template, template arguments, records)
    "alpaca": ("alpaca", {}, INSTRUCTIONS),
    "alpaca_ko": ("alpaca_ko", {}, INSTRUCTIONS),
    "qa_ko": ("qa_ko", {}, QAS),
    "chatml": ("chatml", {}, CHATS),
    "chatml_think": ("chatml_think", {}, CHATS),
    "llama3": ("llama3", {}, CHATS),
    "chat": ("chat", {}, CHATS),  # the tokenizer's own (SmolLM2's, with its default system prompt)
    "qwen3": (str(TEMPLATES / "qwen3.jinja"), {"enable_thinking": False}, CHATS),
    "llama3_2": (str(TEMPLATES / "llama3_2.jinja"), {"date_string": "07 Dec 2026"}, CHATS),
}


def _format(template: str, args: dict, tokenizer_dir: Path, kind: str):
    from sftdata.items import Style
    from sftdata.rendering.plan import RenderPlan
    from sftdata.schemas.records import RecordKind
    from sftdata.tokenize.load import load_tokenizer
    from sftdata.trainers.prompt_format import PromptFormat

    tokenizer = load_tokenizer(str(tokenizer_dir))
    plan = RenderPlan(Style.text, template, None, str(tokenizer_dir), tokenizer, template_args=args)
    renderer = plan.renderer_for(RecordKind(kind))
    t = renderer.template
    return PromptFormat(t.name, t.kind.value, t.source, t.sha256, renderer.eos, None, renderer.bos or "", renderer)


def _records(tmp_path: Path, rows: list[dict]) -> dict:
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return {"data": {"sources": [{"path": str(path)}]}, "eval_data": None}


def _gguf_with_template(source: Path, template: str, out: Path, converters: Path) -> Path:
    """SmolLM2's GGUF with `template` as tokenizer.chat_template, written by llama.cpp's gguf_new_metadata.py."""
    template_file = out.with_suffix(".jinja")
    template_file.write_text(template, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "NO_LOCAL_GGUF"}
    env["PYTHONPATH"] = str(converters / "gguf-py")
    script = converters / "gguf-py" / "gguf" / "scripts" / "gguf_new_metadata.py"
    proc = subprocess.run([sys.executable, str(script), str(source), str(out), "--chat-template-file",
                           str(template_file), "--force"], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def _served_parity(gguf: Path, conversations: list, tmp_path: Path):
    """llama-cpp-python's chat template path against the training text."""
    from sftdata.trainers.llamaservers import post_json
    from sftdata.trainers.parity import check_parity
    from support.llama_server import LlamaServer

    with LlamaServer(gguf, tmp_path / "server.log") as server:
        def served_tokens(messages: list[dict]) -> int:
            body = {"messages": messages, "max_tokens": 1, "temperature": 0.0}
            return post_json(server.base_url, "/chat/completions", body)["usage"]["prompt_tokens"]

        return check_parity(gguf, conversations, served_tokens)


def _llama_server_parity(gguf: Path, conversations: list, tmp_path: Path, binary: Path):
    """llama.cpp's own llama-server --jinja, its /apply-template, against the training text."""
    from sftdata.trainers.llamaservers import LlamaCppServer
    from sftdata.trainers.parity import check_rendered

    with LlamaCppServer(binary, gguf, tmp_path / "llama-server.log", threads=1) as server:
        return check_rendered("llama-server", conversations, server.apply_template)


def _case(case: str, tokenizer_dir: Path, smollm2_gguf: Path, converters: Path, tmp_path: Path):
    """(conversations, the GGUF carrying the exported template) for one case."""
    from sftdata.trainers.parity import held_out

    template, args, rows = CASES[case]
    kind = "chat" if rows is CHATS else "qa" if rows is QAS else "instruction"
    fmt = _format(template, args, tokenizer_dir, kind)
    exported = fmt.chat_template()
    assert exported is not None, case
    for key in args:  # the run's arguments travel inside the template: the server is never asked for them
        assert exported.startswith("{%- set ") and f"set {key} = " in exported
    conversations = held_out(fmt, _records(tmp_path, rows))
    assert len(conversations) == 2 and all(c.trained for c in conversations)  # the row with an input has no chat form
    return conversations, _gguf_with_template(smollm2_gguf, exported, tmp_path / f"{case}.gguf", converters)


@pytest.mark.parametrize("case", list(CASES))
def test_the_server_renders_the_exported_template_as_training_did(
        case: str, smollm2_gguf: Path, smollm2_tokenizer_dir: Path, converters: Path, server_installed: None,
        tmp_path: Path) -> None:
    conversations, gguf = _case(case, smollm2_tokenizer_dir, smollm2_gguf, converters, tmp_path)
    if case == "qwen3":
        assert conversations[0].trained.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    if case == "llama3_2":
        assert "Today Date: 07 Dec 2026" in conversations[0].trained
    parity = _served_parity(gguf, conversations, tmp_path)
    assert parity.ok, parity.as_dict()
    assert all(c.prompt_tokens == c.expected_tokens > 5 for c in parity.cases)


@pytest.mark.parametrize("case", list(CASES))
def test_llama_server_renders_the_exported_template_as_training_did(
        case: str, smollm2_gguf: Path, smollm2_tokenizer_dir: Path, converters: Path, llama_server_binary: Path,
        tmp_path: Path) -> None:
    conversations, gguf = _case(case, smollm2_tokenizer_dir, smollm2_gguf, converters, tmp_path)
    parity = _llama_server_parity(gguf, conversations, tmp_path, llama_server_binary)
    assert parity.ok, parity.as_dict()


@pytest.mark.parametrize("server", ["llama-cpp-python", "llama-server"])
def test_a_different_template_is_reported_at_its_first_differing_character(
        server: str, smollm2_gguf: Path, smollm2_tokenizer_dir: Path, converters: Path, server_installed: None,
        request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Trained with Qwen3 without thinking; the GGUF carries Qwen3's template without the argument pinned, as a
    server that drops chat_template_kwargs renders it: the generation prompt lacks the empty think block."""
    from sftdata.trainers.parity import held_out

    fmt = _format(str(TEMPLATES / "qwen3.jinja"), {"enable_thinking": False}, smollm2_tokenizer_dir, "chat")
    conversations = held_out(fmt, _records(tmp_path, CHATS))
    plain = (TEMPLATES / "qwen3.jinja").read_text(encoding="utf-8")
    gguf = _gguf_with_template(smollm2_gguf, plain, tmp_path / "qwen3-unpinned.gguf", converters)
    if server == "llama-cpp-python":
        parities = [_served_parity(gguf, conversations, tmp_path)]
    else:
        parities = [_llama_server_parity(gguf, conversations, tmp_path, request.getfixturevalue("llama_server_binary"))]
    for parity in parities:
        assert not parity.ok
        for case, conversation in zip(parity.cases, conversations):
            trained = conversation.trained
            position = len(trained) - len("<think>\n\n</think>\n\n")  # where the server's prompt ends instead
            assert (case.ok, case.position, case.trained, case.served) == (False, position, "<think>\n\n</think>\n\n",
                                                                           "")
