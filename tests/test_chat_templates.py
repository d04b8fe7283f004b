"""Chat templates of the models people fine-tune today, checked against transformers as the oracle.

For every template in ../shared/data/chat_templates/ plus SmolLM2's own and Gemma 3's, over single-turn,
multi-turn, tool-calling, reasoning-in-field, reasoning-inline and Korean conversations:
- the text sftdata trains on is `tokenizer.apply_chat_template(messages, tokenize=False, **args)`,
  byte for byte, and decode(input_ids) gives it back;
- the loss mask equals, token for token, transformers' `return_assistant_tokens_mask` on a copy of the
  template with `{% generation %}` around what a model generates at inference (written below; each
  copy is first checked to render the same text as the original, so it is a fair oracle);
- every trained span ends with exactly one stop token, the template's own end-of-turn marker.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from sftdata.curate.samples import encoder_for
from sftdata.items import Locator, Rendered
from sftdata.rendering.plan import make_plan
from sftdata.schemas import ChatRecord, RecordKind
from support.conversations import A1, A2, SYSTEM, U1, U2

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "chat_templates"

# Gemma 3's chat template as google/gemma-3-*-it ship it (the GGUF used here carries none).
GEMMA3 = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\n'}}
{%- endif -%}
"""


def _tag(source: str, edits: list[tuple[str, str]]) -> str:
    for old, new in edits:
        assert source.count(old) >= 1, old
        source = source.replace(old, new)
    return source


# Where each family's model starts generating (after the assistant header, and after a think block the
# generation prompt itself opens or prefills) to its end-of-turn marker inclusive.
TAGS: dict[str, list[tuple[str, str]]] = {
    "qwen3": [
        ("        {%- if loop.index0 > ns.last_query_index %}\n            {%- if loop.last",
         "        {{- '<|im_start|>' + message.role + '\\n' }}{%- generation %}\n"
         "        {%- if loop.index0 > ns.last_query_index %}\n            {%- if loop.last"),
        ("{{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content", "{{- '<think>\\n' + reasoning_content"),
        ("{{- '<|im_start|>' + message.role + '\\n' + content }}", "{{- content }}"),
        ("        {%- endif %}\n        {{- '<|im_end|>\\n' }}\n    {%- elif message.role == \"tool\" %}",
         "        {%- endif %}\n        {{- '<|im_end|>' }}{%- endgeneration %}{{- '\\n' }}\n    {%- elif message.role == \"tool\" %}"),
    ],
    "deepseek_r1_distill": [
        ("{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}",
         "{{'<｜Assistant｜>'}}{% generation %}{{content + '<｜end▁of▁sentence｜>'}}{% endgeneration %}"),
    ],
    "llama3_2": [
        ("{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}",
         "{%- if message.role == 'assistant' %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- generation %}"
         "{{- message['content'] | trim + '<|eot_id|>' }}{%- endgeneration %}{%- else %}"
         "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}{%- endif %}"),
    ],
    "exaone4": [
        ("""                {{- "<think>\\n" }}
                {{- reasoning_content}}
                {{- "\\n</think>\\n\\n" }}
            {%- else %}
                {{- "<think>\\n\\n</think>\\n\\n" }}
            {%- endif %}
            {{- content }}""", """                {{- "<think>\\n" }}
                {%- generation %}{{- reasoning_content}}
                {{- "\\n</think>\\n\\n" }}{{- content }}{{- '[|endofturn|]' }}{%- endgeneration %}{{- '\\n' }}
            {%- else %}
                {{- "<think>\\n\\n</think>\\n\\n" }}
                {%- generation %}{{- content }}{{- '[|endofturn|]' }}{%- endgeneration %}{{- '\\n' }}
            {%- endif %}"""),
        ("""            {%- endfor %}
        {%- endif %}
        {{- end_of_turn -}}
    {%- elif role == "tool" %}""", """            {%- endfor %}
        {%- endif %}
    {%- elif role == "tool" %}"""),
    ],
    "smollm2": [
        ("{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}",
         "{% if message['role'] == 'assistant' %}{{'<|im_start|>assistant\n'}}{% generation %}{{message['content'] + "
         "'<|im_end|>'}}{% endgeneration %}{{'\n'}}{% else %}{{'<|im_start|>' + message['role'] + '\n' + "
         "message['content'] + '<|im_end|>' + '\n'}}{% endif %}"),
    ],
    "gemma3": [
        ("""    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}""", """    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string and role == 'model' -%}
        {% generation %}{{ message['content'] | trim }}{{ '<end_of_turn>' }}{% endgeneration %}
    {%- elif message['content'] is string -%}
        {{ message['content'] | trim }}"""),
        ("""    {{ '<end_of_turn>\n' }}
{%- endfor -%}""", """    {{ ('' if role == 'model' else '<end_of_turn>') + '\n' }}
{%- endfor -%}"""),
    ],
}

THINK = "사용자가 지역 음식을 묻고 있다. 대표적인 것을 고르자."
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Seoul"}}}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                          "required": ["city"]}}}]

CONVERSATIONS = {
    "single": [{"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "I am a helpful assistant."}],
    "korean_multi": [SYSTEM, U1, A1, U2, A2],
    "reasoning_field": [U1, {**A1, "reasoning_content": THINK}, U2, {**A2, "reasoning_content": THINK}],
    "reasoning_inline": [U1, {"role": "assistant", "content": f"<think>\n{THINK}\n</think>\n\n{A1['content']}"}],
    "tools": [{"role": "user", "content": "What is the weather in Seoul?"},
              {"role": "assistant", "content": "", "tool_calls": [CALL]},
              {"role": "tool", "name": "get_weather", "content": '{"temp": 21}'},
              {"role": "assistant", "content": "It is 21 degrees in Seoul."}],
}
# (template, conversation, template arguments); tool calls only where the template renders them
CASES = [(t, c, {}) for t in ("qwen3", "smollm2", "gemma3", "deepseek_r1_distill", "exaone4", "llama3_2")
         for c in ("single", "korean_multi", "reasoning_field", "reasoning_inline")]
CASES += [("qwen3", "tools", {}), ("exaone4", "reasoning_field", {"skip_think": False})]
CASES = [(t, c, {**a, **({"date_string": "26 Jul 2024"} if t == "llama3_2" else {})}) for t, c, a in CASES]


def _source(name: str, tokenizer_dir: Path) -> str:
    if name == "smollm2":
        return (tokenizer_dir / "chat_template.jinja").read_text(encoding="utf-8")
    if name == "gemma3":
        return GEMMA3
    return (SHARED / f"{name}.jinja").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def tokenizers(smollm2_tokenizer_dir: Path, gemma3_tokenizer_dir: Path) -> dict[str, Path]:
    return {"smollm2": smollm2_tokenizer_dir, "gemma3": gemma3_tokenizer_dir}


# The control tokens of the families whose vocabularies are not here: added to SmolLM2's tokenizer as
# special tokens, as each family's own tokenizer has them, so each marker is one token.
CONTROL_TOKENS = {
    "deepseek_r1_distill": ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>"],
    "exaone4": ["[|system|]", "[|user|]", "[|assistant|]", "[|tool|]", "[|endofturn|]"],
    "llama3_2": ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
}


def _setup(name: str, tokenizers: dict[str, Path], tmp_path: Path):
    tok_dir = tokenizers["gemma3" if name == "gemma3" else "smollm2"]
    source = _source(name, tokenizers["smollm2"])
    template_file = tmp_path / f"{name}.jinja"
    template_file.write_text(source, encoding="utf-8")
    oracle = AutoTokenizer.from_pretrained(tok_dir)
    if name in CONTROL_TOKENS:
        oracle.add_special_tokens({"additional_special_tokens": CONTROL_TOKENS[name]})
        tok_dir = tmp_path / f"{name}-tokenizer"
        oracle.save_pretrained(tok_dir)
    oracle.chat_template = source
    return tok_dir, template_file, source, oracle


@pytest.mark.parametrize("name,conversation,args", CASES, ids=[f"{t}-{c}-{a}" for t, c, a in CASES])
def test_text_masks_and_stop_tokens_match_transformers(name, conversation, args, tokenizers, tmp_path):
    tok_dir, template_file, source, oracle = _setup(name, tokenizers, tmp_path)
    messages = CONVERSATIONS[conversation]
    tools = TOOLS if conversation == "tools" else None
    plan = make_plan(str(template_file), str(tok_dir), None, None, template_args=args)
    renderer = plan.renderer_for(RecordKind.chat)
    record = ChatRecord.model_validate({"messages": messages, **({"tools": tools} if tools else {})})
    rendered = renderer.render(record, Locator("case.jsonl", line=1))
    assert isinstance(rendered, Rendered), rendered

    want = oracle.apply_chat_template(messages, tools=tools, tokenize=False, **args)
    assert rendered.text == want

    encoder = encoder_for(plan)
    [tokenized] = encoder.encode([rendered])
    assert encoder.decode(tokenized.input_ids) == encoder.expected_text(rendered, tokenized) == want
    assert encoder.problems(tokenized) == []
    stop_id = oracle.convert_tokens_to_ids(renderer.eos)
    for start, end in tokenized.spans():
        assert tokenized.input_ids[end - 1] == stop_id
        assert stop_id not in tokenized.input_ids[start:end - 1]

    tagged = _tag(source, TAGS[name])
    assert oracle.apply_chat_template(messages, tools=tools, tokenize=False, chat_template=tagged, **args) == want
    reference = oracle.apply_chat_template(messages, tools=tools, tokenize=True, return_dict=True,
                                           return_assistant_tokens_mask=True, chat_template=tagged, **args)
    assert tokenized.input_ids == list(reference["input_ids"])
    assert tokenized.mask == list(reference["assistant_masks"])


@pytest.mark.slow  # loads and saves six tokenizers, Gemma 3's among them: ~16 s CPU
def test_the_stop_token_is_the_templates_own_end_of_turn_marker(tokenizers, tmp_path):
    expected = {"qwen3": "<|im_end|>", "smollm2": "<|im_end|>", "gemma3": "<end_of_turn>",
                "deepseek_r1_distill": "<｜end▁of▁sentence｜>", "exaone4": "[|endofturn|]", "llama3_2": "<|eot_id|>"}
    for name, stop in expected.items():
        tok_dir, template_file, _, _ = _setup(name, tokenizers, tmp_path)
        renderer = make_plan(str(template_file), str(tok_dir), None, None).renderer_for(RecordKind.chat)
        assert renderer.eos == stop, name


@pytest.mark.slow  # loads Gemma 3's tokenizer twice: ~12 s CPU
def test_gemma3_is_never_given_a_second_eos_after_its_end_of_turn(tokenizers, tmp_path):
    tok_dir, template_file, _, _ = _setup("gemma3", tokenizers, tmp_path)
    plan = make_plan(str(template_file), str(tok_dir), None, None)
    record = ChatRecord.model_validate({"messages": CONVERSATIONS["korean_multi"]})
    rendered = plan.renderer_for(RecordKind.chat).render(record, Locator("x"))
    assert "<eos>" not in rendered.text
    assert rendered.text.count("<end_of_turn>") == 4


def _trained(name: str, conversation: str, args: dict, tokenizers: dict, tmp_path: Path) -> tuple[str, list[str]]:
    tok_dir, template_file, _, oracle = _setup(name, tokenizers, tmp_path)
    plan = make_plan(str(template_file), str(tok_dir), None, None, template_args=args)
    record = ChatRecord.model_validate({"messages": CONVERSATIONS[conversation]})
    rendered = plan.renderer_for(RecordKind.chat).render(record, Locator("x"))
    assert rendered.text == oracle.apply_chat_template(CONVERSATIONS[conversation], tokenize=False, **args)
    return rendered.text, [s.text for s in rendered.segments if s.train]


def test_a_think_block_the_generation_prompt_prefills_is_prompt_not_trained(tokenizers, tmp_path):
    """Qwen3 with enable_thinking=false writes an empty think block into the generation prompt: at
    inference the model never generates it, so it carries no loss; by default it is the model's own."""
    _, off = _trained("qwen3", "korean_multi", {"enable_thinking": False}, tokenizers, tmp_path)
    assert off[-1] == A2["content"] + "<|im_end|>"
    _, on = _trained("qwen3", "korean_multi", {}, tokenizers, tmp_path)
    assert on[-1] == "<think>\n\n</think>\n\n" + A2["content"] + "<|im_end|>"
    _, exaone = _trained("exaone4", "single", {"enable_thinking": True}, tokenizers, tmp_path)
    assert exaone[-1] == "\n</think>\n\n" + CONVERSATIONS["single"][1]["content"] + "[|endofturn|]"


def test_train_on_last_and_per_message_weights(tokenizers, tmp_path):
    tok_dir, template_file, _, _ = _setup("qwen3", tokenizers, tmp_path)
    messages = CONVERSATIONS["korean_multi"]
    for train_on, weights, expected in (("all", {}, [A1, A2]), ("last", {}, [A2]), ("all", {2: 0}, [A2]),
                                        ("last", {2: 1}, [A1, A2])):
        plan = make_plan(str(template_file), str(tok_dir), None, None, train_on=train_on)
        weighted = [{**m, "weight": weights[i]} if i in weights else m for i, m in enumerate(messages)]
        record = ChatRecord.model_validate({"messages": weighted})
        rendered = plan.renderer_for(RecordKind.chat).render(record, Locator("x"))
        trained = [s.text for s in rendered.segments if s.train]
        assert [t.removeprefix("<think>\n\n</think>\n\n") for t in trained] == [
            m["content"] + "<|im_end|>" for m in expected], (train_on, weights)


def _records_file(path: Path, conversations: list[list[dict]]) -> Path:
    import orjson

    path.write_bytes(b"".join(orjson.dumps({"messages": c}) + b"\n" for c in conversations))
    return path


def _codes(name: str, rows: list[list[dict]], tokenizers: dict, tmp_path: Path, **options) -> dict[str, int]:
    import sftdata

    tok_dir, template_file, _, _ = _setup(name, tokenizers, tmp_path)
    data = _records_file(tmp_path / f"{name}.jsonl", rows)
    result = sftdata.audit([data], str(tok_dir), template=str(template_file), trainer="trl", **options)
    return {f["code"]: f["count"] for f in result.summary()["findings"]}


THINKING = {"reasoning_dropped", "history_differs", "reasoning_mixed", "empty_think_trained", "unclosed_think",
            "template_reads_date", "special_token_in_text", "turn_not_located"}


def test_audit_finds_reasoning_dropped_by_the_template(tokenizers, tmp_path):
    rows = [CONVERSATIONS["reasoning_field"], [U1, {**A1, "reasoning_content": THINK}]]
    assert _codes("deepseek_r1_distill", rows, tokenizers, tmp_path)["reasoning_dropped"] == 3
    assert _codes("exaone4", rows, tokenizers, tmp_path)["reasoning_dropped"] == 3  # skip_think=true by default
    fixed = _codes("exaone4", rows, tokenizers, tmp_path, template_args=["skip_think=false"], train_on="last")
    assert "reasoning_dropped" not in fixed


def test_audit_finds_qwen3_history_trained_differently_and_the_fix_silences_it(tokenizers, tmp_path):
    rows = [CONVERSATIONS["korean_multi"], CONVERSATIONS["reasoning_field"]]
    found = _codes("qwen3", rows, tokenizers, tmp_path)
    assert found["history_differs"] == 2 and found["reasoning_dropped"] == 1
    fixed = _codes("qwen3", rows, tokenizers, tmp_path, train_on="last")
    assert "history_differs" not in fixed and "reasoning_dropped" not in fixed


def test_audit_finds_mixed_reasoning_unclosed_think_empty_think_and_an_unpinned_date(tokenizers, tmp_path):
    rows = [[U1, {**A1, "reasoning_content": THINK}], [U2, A2],
            [U1, {"role": "assistant", "content": "<think>생각 중 답: 흑돼지"}]]
    found = _codes("qwen3", rows, tokenizers, tmp_path)
    assert found["reasoning_mixed"] == 1 and found["unclosed_think"] == 1 and found["empty_think_trained"] == 2
    llama = CONVERSATIONS["single"]
    assert _codes("llama3_2", [llama], tokenizers, tmp_path)["template_reads_date"] == 1
    assert "template_reads_date" not in _codes("llama3_2", [llama], tokenizers, tmp_path,
                                               template_args=["date_string=26 Jul 2024"])


def test_audit_stays_silent_on_clean_reasoning_data(tokenizers, tmp_path):
    rows = [[U1, {**A1, "reasoning_content": THINK}], [SYSTEM, U2, {**A2, "reasoning_content": THINK}]]
    assert not THINKING & set(_codes("qwen3", rows, tokenizers, tmp_path))


def test_special_tokens_inside_data_are_per_row_rejects_and_the_run_goes_on(tokenizers, tmp_path):
    import sftdata

    tok_dir, template_file, _, _ = _setup("qwen3", tokenizers, tmp_path)
    rows = [CONVERSATIONS["single"],
            [{"role": "user", "content": "Say <|im_start|>assistant please"}, A1],
            [U1, {"role": "assistant", "content": "끝<|endoftext|>"}], CONVERSATIONS["korean_multi"]]
    data = _records_file(tmp_path / "mixed.jsonl", rows)
    result = sftdata.render([data], tmp_path / "out.jsonl", template=str(template_file), tokenizer=str(tok_dir))
    s = result.summary()
    assert (s["read"], s["written"], s["rejected"]) == (4, 2, 2)
    assert s["by_reason"] == {"special_token_in_text": 2}
    assert [r.field for r in result.examples] == ["messages[0].content", "messages[1].content"]


def test_a_turn_the_template_does_not_render_is_a_per_row_reject(tokenizers, tmp_path):
    import sftdata

    tok_dir = tokenizers["smollm2"]
    template = tmp_path / "drops_tools.jinja"  # renders nothing of an assistant turn that only calls a tool
    template.write_text("{% for m in messages %}{% if m.content %}<|im_start|>{{ m.role }}\n{{ m.content }}"
                        "<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
                        "{% endif %}", encoding="utf-8")
    data = _records_file(tmp_path / "tools.jsonl", [CONVERSATIONS["tools"], CONVERSATIONS["single"]])
    result = sftdata.render([data], tmp_path / "out.jsonl", template=str(template), tokenizer=str(tok_dir))
    s = result.summary()
    assert (s["written"], s["rejected"], s["by_reason"]) == (1, 1, {"turn_not_located": 1})
    assert "drops_tools" in result.examples[0].message


def test_reasoning_is_read_split_and_exported_in_each_targets_convention(tmp_path):
    import orjson

    import sftdata

    rows = [{"messages": [U1, {"role": "assistant", "content": f"<think>\n{THINK}\n</think>\n\n{A1['content']}"}]},
            {"messages": [U2, {"role": "assistant", "content": A2["content"], "thinking": THINK}]},
            {"messages": [U1, A1]}]
    source = tmp_path / "trl.jsonl"
    source.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    records = tmp_path / "records.jsonl"
    assert sftdata.convert([source], records, preset="trl", split_thinking=True).summary()["written"] == 3
    got = [orjson.loads(line)["messages"][1] for line in records.read_bytes().splitlines()]
    assert got[0] == {"role": "assistant", "content": A1["content"], "reasoning_content": THINK}
    assert got[1] == {"role": "assistant", "content": A2["content"], "reasoning_content": THINK}
    assert "reasoning_content" not in got[2]
    kept = tmp_path / "kept.jsonl"  # without --split-thinking the inline block stays in the content
    sftdata.convert([source], kept, preset="trl")
    assert orjson.loads(kept.read_bytes().splitlines()[0])["messages"][1]["content"].startswith("<think>")

    trl = sftdata.export(records, tmp_path / "trl_out.jsonl", "trl")
    assert trl.dropped == {} and orjson.loads((tmp_path / "trl_out.jsonl").read_bytes().splitlines()[0])[
        "messages"][1]["reasoning_content"] == THINK
    openai = sftdata.export(records, tmp_path / "openai.jsonl", "openai")
    assert openai.dropped == {"reasoning_content": 2} and openai.summary()["written"] == 3
    lf = sftdata.export(records, tmp_path / "lf", "llamafactory")
    assert lf.converted == {"reasoning_content→<think> in content": 2}
    [data] = [p for p in (tmp_path / "lf").glob("*.json") if p.name != "dataset_info.json"]
    first = orjson.loads(data.read_bytes())[0]["conversations"][1]["value"]
    assert first == f"<think>\n{THINK}\n</think>\n\n{A1['content']}"


def test_split_turns_renders_every_trained_turn_as_the_last_one(tokenizers, tmp_path):
    import orjson

    import sftdata

    rows = [{"messages": CONVERSATIONS["reasoning_field"]}, {"messages": CONVERSATIONS["single"]}]
    source = tmp_path / "multi.jsonl"
    source.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    split = tmp_path / "split.jsonl"
    s = sftdata.convert([source], split, preset="trl", split_turns=True).summary()
    assert (s["read"], s["written"]) == (3, 3)  # the two-turn row became two rows, counted as read
    parts = [orjson.loads(line)["messages"] for line in split.read_bytes().splitlines()]
    assert [len(p) for p in parts] == [2, 4, 2] and parts[1][1]["weight"] == 0 and parts[1][3]["weight"] == 1
    found = _codes("qwen3", parts[:2], tokenizers, tmp_path)
    assert "history_differs" not in found and "reasoning_dropped" not in found
    tok_dir, template_file, _, _ = _setup("qwen3", tokenizers, tmp_path)
    out = tmp_path / "rendered.jsonl"
    sftdata.render([split], out, template=str(template_file), tokenizer=str(tok_dir), style="prompt-completion")
    completions = [orjson.loads(line)["completion"] for line in out.read_bytes().splitlines()]
    assert completions[:2] == [f"<think>\n{THINK}\n</think>\n\n{m['content']}<|im_end|>" for m in (A1, A2)]


def test_stats_counts_reasoning_and_answer_tokens_and_filter_drops_long_reasoning(tokenizers, tmp_path):
    import orjson

    import sftdata

    tok_dir, template_file, _, oracle = _setup("qwen3", tokenizers, tmp_path)
    long_think = "생각을 아주 길게 한다. " * 40
    rows = [[U1, {**A1, "reasoning_content": THINK}], [U2, {**A2, "reasoning_content": long_think}], [U1, A1]]
    data = _records_file(tmp_path / "r.jsonl", rows)
    stats = sftdata.stats([data], str(tok_dir), template=str(template_file)).summary()["stats"]["reasoning"]
    think_tokens = [len(oracle(t, add_special_tokens=False)["input_ids"]) for t in (THINK, long_think)]
    assert stats["rows"] == 2 and stats["reasoning_tokens"]["max"] == max(think_tokens)
    kept = sftdata.filter([data], tmp_path / "kept.jsonl", tokenizer=str(tok_dir), max_reasoning_tokens=100)
    s = kept.summary()
    assert (s["written"], s["filtered"], s["by_reason"]) == (2, 1, {"reasoning_too_long": 1})
    assert orjson.loads((tmp_path / "kept.rejects.jsonl").read_bytes())["line"] == 2
