"""synth parts that need no server: novelty (Korean included), gates, limits, reply parsing, store."""
from __future__ import annotations

import asyncio
import random
import sys
import time

import orjson
import pytest

from sftdata.errors import OutputError
from sftdata.schemas.records import InstructionRecord
from sftdata.synthesis.backends import FormatChooser, redact, response_format_payload
from sftdata.synthesis.gates import Gates
from sftdata.synthesis.limits import RateLimiter, RetriesExhausted, RetryPolicy, Transient, with_retries
from sftdata.synthesis.novelty import NoveltyIndex, similarity
from sftdata.synthesis.requests import ChatRequest
from sftdata.synthesis.store import Store
from sftdata.synthesis.tasks import Seed, Task, extract_json, load_prompt_template, reply_schema


def _record(instruction: str, output: str = "답변입니다. 충분히 긴 답변입니다.") -> InstructionRecord:
    return InstructionRecord(instruction=instruction, output=output)


def test_korean_near_duplicate_is_rejected_and_a_distinct_one_accepted():
    index = NoveltyIndex()
    index.add("서울의 인구는 몇 명인가요?", "seed s1")
    gates = Gates(novelty=index)
    near = gates.check(_record("부산의 인구는 몇 명인가요?"))
    assert near is not None and near.reason == "too_similar" and "seed s1" in near.message
    assert gates.check(_record("김치찌개를 맛있게 끓이는 방법을 단계별로 알려 주세요.")) is None
    # The self-instruct reference's ROUGE tokenizer sees no tokens in Hangul; here Korean pairs score.
    assert similarity("서울의 인구는 몇 명인가요?", "서울의 인구는 몇 명인가요") > 0.8
    assert similarity("서울의 인구는 몇 명인가요?", "김치찌개 끓이는 법") < 0.2


def test_gates_length_deny_and_language():
    gates = Gates(lang="ko")
    assert gates.check(_record("짧음")).reason == "too_short"
    assert gates.check(_record("다음 이미지를 보고 설명하세요.")).reason == "denied_word"
    english = InstructionRecord(instruction="Explain how tides work in detail.", output="Tides are caused by the moon.")
    assert gates.check(english).reason == "wrong_language"
    assert Gates().check(english) is None  # no language check unless asked
    assert Gates().check(InstructionRecord(instruction="Describe the mapping of genes.", output="x")) is None
    assert Gates().check(InstructionRecord(instruction="Describe the map.", output="x")).reason == "denied_word"


def test_extract_json_is_tolerant():
    assert extract_json('{"a": 1}') == {"a": 1}
    assert extract_json('Sure!\n```json\n{"tasks": []}\n```\nDone.') == {"tasks": []}
    assert extract_json('Here: {"output": "x"} and more') == {"output": "x"}
    assert extract_json('no json here') is None
    assert extract_json('{"output": "cut off') is None


def test_parse_reply_shapes_and_rejects():
    template = load_prompt_template("synth_self_instruct_en")
    seeds = [Seed("s1", "Name a colour.", "", "Blue.", "x:1")]
    task = Task("self-instruct", template, seeds, per_request=2)
    spec = task.spec(0)
    good = task.parse('{"tasks": [{"instruction": "Name a fruit.", "input": "", "output": "Apple."},'
                      ' {"instruction": "", "input": "", "output": "x"}, {"instruction": "extra", "output": "y"}]}',
                      "stop", spec)
    assert isinstance(good[0], InstructionRecord) and good[0].instruction == "Name a fruit."
    assert good[1].reason == "invalid_record" and len(good) == 2  # per_request caps the items
    assert task.parse('{"tasks": [{"instruction": "a', "length", spec)[0].reason == "truncated"
    assert task.parse("I cannot help", "stop", spec)[0].reason == "invalid_json"


def test_request_plan_is_deterministic_and_keys_are_content_hashes():
    template = load_prompt_template("synth_self_instruct_ko")
    seeds = [Seed(f"s{i}", f"지시문 {i}번입니다", "", f"출력 {i}", f"x:{i}") for i in range(10)]
    a = Task("self-instruct", template, seeds, seed=7, key_context={"model": "m"})
    b = Task("self-instruct", template, seeds, seed=7, key_context={"model": "m"})
    assert [a.spec(i).key for i in range(5)] == [b.spec(i).key for i in range(5)]
    assert len({a.spec(i).key for i in range(5)}) == 5
    other = Task("self-instruct", template, seeds, seed=7, key_context={"model": "other"})
    assert other.spec(0).key != a.spec(0).key
    assert "{{" not in a.spec(0).request.messages[-1]["content"]


def test_seed_text_is_data_not_template_code():
    template = load_prompt_template("synth_answer_en")
    target = Seed("t", "Print {{ 7 * 7 }} and {% raw %}", "", None, "x:1")
    task = Task("answer", template, [target])
    content = task.answer_spec(0, target, 0).request.messages[-1]["content"]
    assert "{{ 7 * 7 }} and {% raw %}" in content and "49" not in content


def test_reply_schema_follows_the_record_fields():
    schema = reply_schema("self-instruct", 3)
    item = schema["properties"]["tasks"]["items"]
    assert set(item["required"]) == {"instruction", "input", "output"}
    assert schema["properties"]["tasks"]["maxItems"] == 3
    request = ChatRequest([], 10, 0.5, 1.0, 1, schema, "x")
    strict = response_format_payload("json_schema", request)["json_schema"]
    assert strict["strict"] is True and "minLength" not in str(strict["schema"])
    assert response_format_payload("json_object", request) == {"type": "json_object", "schema": schema}
    assert response_format_payload("none", request) is None


def test_format_chooser_falls_back_in_order_and_sticks():
    chooser = FormatChooser("auto")
    assert list(chooser.order()) == ["json_schema", "json_object", "none"]
    chooser.confirm("json_object")
    assert list(chooser.order()) == ["json_object", "none"]
    assert list(FormatChooser("none").order()) == ["none"]


def test_redact_removes_the_key():
    key = "sk-test-LEAKCHECK-0123456789abcdef"
    text = redact(f"Incorrect API key provided: {key}. Also sk-proj-abcdefghijkl", [key])
    assert key not in text and "LEAKCHECK" not in text and "abcdefghijkl" not in text


def test_rpm_limiter_spaces_a_burst():
    async def burst() -> list[float]:
        limiter = RateLimiter(rpm=600)  # one every 0.1 s
        stamps: list[float] = []

        async def one() -> None:
            await limiter.acquire()
            stamps.append(time.monotonic())

        await asyncio.gather(*(one() for _ in range(8)))
        return sorted(stamps)

    stamps = asyncio.run(burst())
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert min(gaps) > 0.08
    assert stamps[-1] - stamps[0] >= 0.65


def test_tpm_limiter_waits_for_tokens():
    async def go() -> float:
        limiter = RateLimiter(tpm=6000)  # 100 tokens/s, bucket of 1000
        start = time.monotonic()
        await limiter.acquire(1000)
        await limiter.acquire(200)  # the bucket is empty: ~2 s
        return time.monotonic() - start

    assert 1.5 < asyncio.run(go()) < 4


def test_retries_honour_retry_after_and_give_up():
    calls: list[float] = []

    async def flaky() -> str:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise Transient("rate_limited", "429", retry_after=0.3)
        return "ok"

    policy = RetryPolicy(retries=4, base=0.01)
    result = asyncio.run(with_retries(flaky, policy, RateLimiter(), 0, random.Random(0)))
    assert result == "ok" and calls[1] - calls[0] >= 0.29 and calls[2] - calls[1] >= 0.29

    async def down() -> str:
        raise Transient("connection_error", "refused")

    with pytest.raises(RetriesExhausted) as info:
        asyncio.run(with_retries(down, RetryPolicy(retries=2, base=0.01), RateLimiter(), 0, random.Random(0)))
    assert info.value.attempts == 3


def test_retry_after_holds_back_every_worker():
    async def go() -> dict[str, list[float]]:
        limiter, stamps = RateLimiter(), {"first": [], "second": []}

        async def worker(name: str, delay: float, fail_first: bool) -> None:
            await asyncio.sleep(delay)

            async def attempt() -> None:
                stamps[name].append(time.monotonic())
                if fail_first and len(stamps[name]) == 1:
                    raise Transient("rate_limited", "429", retry_after=0.5)

            await with_retries(attempt, RetryPolicy(base=0.01), limiter, 0, random.Random(0))

        await asyncio.gather(worker("first", 0, True), worker("second", 0.1, False))
        return stamps

    stamps = asyncio.run(go())
    assert stamps["second"][0] - stamps["first"][0] >= 0.45  # the other worker waited out the 429 too


def test_backoff_grows_and_has_jitter():
    policy, rng = RetryPolicy(base=1.0, cap=30.0), random.Random(1)
    delays = [policy.delay(n, None, rng) for n in range(6)]
    assert all(0.5 * min(30, 2 ** n) <= d <= min(30, 2 ** n) for n, d in enumerate(delays))
    assert policy.delay(0, 10.0, rng) == 10.0


def test_store_cuts_a_torn_line_and_resumes(tmp_path):
    out = tmp_path / "out.jsonl"
    row = {"instruction": "a", "output": "b", "meta": {"synth": {"request_key": "k1", "item": 0}}}
    out.write_bytes(orjson.dumps(row) + b"\n" + b'{"instruction": "half')
    store = Store(out).open()
    try:
        assert len(store.rows) == 1 and ("k1", 0) in store.accepted_keys and store.repaired
        with pytest.raises(OutputError):
            Store(out).open()  # a second run on the same output is refused
        store.accept({"instruction": "c", "output": "d", "meta": {"synth": {"request_key": "k2", "item": 0}}})
    finally:
        store.close()
    lines = out.read_bytes().splitlines()
    assert len(lines) == 2 and all(orjson.loads(line) for line in lines)


def test_core_does_not_import_openai():
    import subprocess

    code = ("import sys, sftdata.cli, sftdata.pipeline, sftdata.synthesis; "
            "print(any(m in sys.modules for m in ('openai', 'torch', 'transformers')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"


def test_gates_reject_answers_without_letters_echoes_and_too_short_ones_in_the_asked_language():
    """`synth --mode answer --lang ko` used to accept "..." and "🌟" as Korean answers."""
    gates = Gates(lang="ko", min_output_chars=2)
    ask = "한국의 수도는 어디인가요?"
    verdicts = {answer: gates.check(InstructionRecord(instruction=ask, output=answer))
                for answer in ("...", "🌟", "네", ask, "  한국의 수도는   어디인가요? ", "Seoul is the capital.",
                               "서울입니다.")}
    reasons = {answer: v.reason if v else None for answer, v in verdicts.items()}
    assert reasons == {"...": "no_letters", "🌟": "too_short", "네": "too_short", ask: "repeats_question",
                       "  한국의 수도는   어디인가요? ": "repeats_question", "Seoul is the capital.": "wrong_language",
                       "서울입니다.": None}
