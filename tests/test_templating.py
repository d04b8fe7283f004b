"""sftdata/rendering/templating.py and rendering.py: exact built-in prompts, one EOS, literal data, the sandbox."""
from __future__ import annotations

import re

import pytest

from sftdata.errors import TemplateError
from sftdata.items import Locator, Reject, Rendered
from sftdata.rendering.plan import make_plan
from sftdata.rendering.templating import Renderer, load_template
from sftdata.schemas import ChatRecord, InstructionRecord, QARecord, RecordKind
from sftdata.tokenize.load import load_tokenizer

HERE = Locator("t.jsonl", line=1)
# The reference prompts, verbatim from Stanford Alpaca's train.py.
ALPACA_INPUT = ("Below is an instruction that describes a task, paired with an input that provides further context. "
                "Write a response that appropriately completes the request.\n\n"
                "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n")
ALPACA_NO_INPUT = ("Below is an instruction that describes a task. "
                   "Write a response that appropriately completes the request.\n\n"
                   "### Instruction:\n{instruction}\n\n### Response:\n")


def _render(name, record, eos="</s>", **kw) -> Rendered:
    out = Renderer(load_template(name), eos, **kw).render(record, HERE)
    assert isinstance(out, Rendered), out
    return out


def test_alpaca_matches_the_reference_prompts():
    out = _render("alpaca", InstructionRecord(instruction="Add.", input="1 2", output="3"))
    assert out.split() == (ALPACA_INPUT.format(instruction="Add.", input="1 2"), "3</s>")
    out = _render("alpaca", InstructionRecord(instruction="Say hi.", output="hi"))
    assert out.split() == (ALPACA_NO_INPUT.format(instruction="Say hi."), "hi</s>")


def test_alpaca_ko_and_qa_ko():
    out = _render("alpaca_ko", InstructionRecord(instruction="요약하세요.", input="본문", output="요약"))
    prompt, completion = out.split()
    assert prompt.startswith("아래는 작업을 설명하는 지시 사항과 추가적인 컨텍스트를 제공하는 입력이 있습니다. "
                             "요청을 적절하게 완료하는 응답을 작성하세요.\n\n### instruction:\n요약하세요.")
    assert "### input:\n본문\n\n### output:\n" in prompt and completion == "요약</s>"
    out = _render("qa_ko", QARecord(question="왜?", answer="때문에."))
    assert out.text == "### 질문: 왜?\n\n### 답변: 때문에.</s>"


def test_data_that_looks_like_jinja_renders_literally(shared_data):
    import orjson

    rows = orjson.loads((shared_data / "identity.json").read_bytes())
    templated = [r for r in rows if "{{name}}" in r["output"]]
    assert templated
    for row in templated[:5]:
        out = _render("alpaca", InstructionRecord(**row))
        assert out.split()[1] == row["output"] + "</s>"
    evil = InstructionRecord(instruction="{% for x in range(3) %}X{% endfor %}", output="{{ 7*7 }}")
    assert _render("alpaca", evil).split()[1] == "{{ 7*7 }}</s>"


def test_exactly_one_eos_even_when_the_template_adds_it(tmp_path):
    user = tmp_path / "mine.jinja"
    user.write_text("{% block prompt %}Q: {{ instruction }}\nA: {% endblock %}"
                    "{% block completion %}{{ output }}{{ eos_token }}{% endblock %}", encoding="utf-8")
    out = _render(str(user), InstructionRecord(instruction="x", output="y"))
    assert out.text == "Q: x\nA: y</s>" and out.text.count("</s>") == 1


def test_eos_inside_data_is_a_reject():
    out = Renderer(load_template("alpaca"), "</s>").render(InstructionRecord(instruction="x", output="y</s>"), HERE)
    assert isinstance(out, Reject) and out.reason == "eos_in_text" and out.field == "output"


def test_block_templates_without_eos_refuse_to_guess():
    with pytest.raises(TemplateError, match="needs an EOS"):
        make_plan("alpaca", None, None, None)
    plan = make_plan("chatml", None, None, None)  # built-in chat formats know their end-of-turn token
    assert plan.renderer_for(RecordKind.chat).eos == "<|im_end|>"


def _conversation():
    return ChatRecord.model_validate({"messages": [
        {"role": "system", "content": "sys"}, {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]})


@pytest.mark.parametrize("name, eos", [("chatml", "<|im_end|>"), ("llama3", "<|eot_id|>")])
def test_builtin_chat_formats_train_every_assistant_turn_once(name, eos):
    out = _render(name, _conversation(), eos=eos)
    trained = [s.text for s in out.segments if s.train]
    assert trained == ["b" + eos, "d" + eos]
    assert out.text.count(eos) == 5  # one per turn, none doubled


def test_chat_template_of_a_real_tokenizer(smollm2_tokenizer_dir):
    tok = load_tokenizer(smollm2_tokenizer_dir)
    plan = make_plan("chat", str(smollm2_tokenizer_dir), None, None)
    renderer = plan.renderer_for(RecordKind.chat)
    assert renderer.eos == tok.eos_token == "<|im_end|>"
    out = renderer.render(_conversation(), HERE)
    assert out.text == tok.apply_chat_template([m.model_dump(exclude_none=True, mode="json")
                                                for m in _conversation().messages], tokenize=False)
    assert [s.text for s in out.segments if s.train] == ["b<|im_end|>", "d<|im_end|>"]


@pytest.mark.slow  # loads Gemma 3's tokenizer three times (~6 s CPU each)
def test_tokenizer_without_chat_template_is_a_clear_error(gemma3_tokenizer_dir):
    plan = make_plan("alpaca", str(gemma3_tokenizer_dir), None, None)
    assert plan.renderer_for(RecordKind.instruction).eos == load_tokenizer(gemma3_tokenizer_dir).eos_token == "<eos>"
    with pytest.raises(TemplateError, match="no chat_template"):
        make_plan("chat", str(gemma3_tokenizer_dir), None, None)


SSTI = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ instruction.__class__.__base__.__subclasses__() }}",
    "{{ '%s' % instruction.__class__ }}{{ ''.format.__globals__ }}",
    "{% set x = [].append(1) %}",
]


@pytest.mark.parametrize("payload", SSTI)
def test_user_templates_run_in_the_sandbox(tmp_path, payload):
    user = tmp_path / "evil.jinja"
    user.write_text("{% block prompt %}" + payload + "{% endblock %}{% block completion %}{{ output }}{% endblock %}",
                    encoding="utf-8")
    rejected = Renderer(load_template(str(user)), "</s>").render(InstructionRecord(instruction="x", output="y"), HERE)
    assert isinstance(rejected, Reject) and rejected.reason == "template_error"
    assert str(user) in rejected.message


def test_template_errors_name_file_and_line(tmp_path):
    broken = tmp_path / "broken.jinja"
    broken.write_text("{% block prompt %}\n{{ instruction }\n{% endblock %}", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"broken\.jinja:2"):
        load_template(str(broken))
    undefined = tmp_path / "undefined.jinja"
    undefined.write_text("{% block prompt %}\n\n{{ nope }}{% endblock %}{% block completion %}x{% endblock %}",
                         encoding="utf-8")
    rejected = Renderer(load_template(str(undefined)), "</s>").render(InstructionRecord(instruction="x", output="y"),
                                                                      HERE)
    assert rejected.reason == "template_error"
    assert re.search(r"undefined\.jinja:3.*nope", rejected.message)
    with pytest.raises(TemplateError, match="unknown template"):
        load_template("no-such-template")
