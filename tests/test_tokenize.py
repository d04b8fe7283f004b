"""sftdata/tokenize/encode.py: the one place ids and masks are made, checked on both real tokenizers.

Invariants (hypothesis): decode(input_ids) is the rendered text (after a BOS the tokenizer adds
itself, never two); each trained span ends with exactly one EOS / end-of-turn token and holds no
other; the mask covers exactly the trained segments (the completion, or every assistant turn).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from sftdata.curate.samples import encoder_for, open_plan
from sftdata.items import Locator, Rendered
from sftdata.schemas import ChatRecord, InstructionRecord, QARecord
from sftdata.schemas.records import RecordKind
from sftdata.tokenize.encode import Encoder, Problem, Strategy, token_texts

HERE = Path(__file__).resolve().parent
WHERE = Locator("test.jsonl", line=1)
TEMPLATES = {"smollm2": ["alpaca", "alpaca_ko", "qa_ko", "chatml", "llama3", "chat"],
             "gemma3": ["alpaca", "alpaca_ko", "qa_ko", "chatml", "llama3"]}


@pytest.fixture(scope="module")
def toks(smollm2_tokenizer_dir: Path, gemma3_tokenizer_dir: Path) -> dict:
    return {"smollm2": AutoTokenizer.from_pretrained(smollm2_tokenizer_dir),
            "gemma3": AutoTokenizer.from_pretrained(gemma3_tokenizer_dir)}


# Text as data arrives: Latin, Hangul, CJK, emoji, punctuation, runs of spaces and newlines. U+2581
# ("▁") is left out: SentencePiece tokenizers (Gemma) use it for the space and decode it as one.
_ALPHABET = st.sampled_from(list("abcXYZ 09.,!?-_'\"()\n\t  ") + list("안녕하세요한국어문장") + list("中文字éüß")
                            + ["😀", "👍🏽", "\u00a0", "\r\n", "  ", "\n\n", "{{ name }}", "<", ">", "|"])
_TEXT = st.lists(_ALPHABET, min_size=1, max_size=40).map("".join).filter(lambda s: s.strip() != "")


@st.composite
def records(draw, kind: RecordKind):
    if kind is RecordKind.qa:
        return QARecord(question=draw(_TEXT), answer=draw(_TEXT), context=draw(st.none() | _TEXT))
    if kind is RecordKind.instruction:
        return InstructionRecord(instruction=draw(_TEXT), input=draw(st.just("") | _TEXT), output=draw(_TEXT),
                                 system=draw(st.none() | _TEXT))
    turns = draw(st.integers(1, 3))
    messages = [{"role": "system", "content": draw(_TEXT)}] if draw(st.booleans()) else []
    for _ in range(turns):
        messages += [{"role": "user", "content": draw(_TEXT)}, {"role": "assistant", "content": draw(_TEXT)}]
    return ChatRecord.model_validate({"messages": messages})


def _kind_for(template: str) -> RecordKind:
    return {"qa_ko": RecordKind.qa, "chatml": RecordKind.chat, "llama3": RecordKind.chat,
            "chat": RecordKind.chat}.get(template, RecordKind.instruction)


def check_invariants(encoder: Encoder, rendered: Rendered) -> None:
    (tok,) = encoder.encode([rendered])
    ids = tok.input_ids
    assert encoder.decode(ids) == encoder.expected_text(rendered, tok)
    bos = encoder.specials.bos_id
    assert not (len(ids) > 1 and ids[0] == bos and ids[1] == bos), "two BOS"
    assert tok.bos_added == encoder.specials.adds_bos  # our templates never put a BOS in the text
    assert len(tok.mask) == len(ids) and set(tok.mask) <= {0, 1}
    start = int(tok.bos_added)
    whole = encoder.backend.encode(rendered.text, add_special_tokens=False) if rendered.whole else None
    if whole is not None and ids[start:] == whole.ids:
        # a chat tokenized whole, as transformers tokenizes it: every token that overlaps a trained turn is trained
        # (return_assistant_tokens_mask's rule: "\n\n" across the header's end and the turn's start); one whose
        # tokens would cross the end of a trained turn is tokenized piece by piece (checked below)
        spans, at = [], 0
        for segment in rendered.segments:
            if segment.train:
                spans.append((at, at + len(segment.text)))
            at += len(segment.text)
        assert tok.mask[start:] == [int(any(a < max(e, s + 1) and s < b for a, b in spans)) for s, e in whole.offsets]
        for first, last in tok.spans():
            span = ids[first:last]
            assert encoder.ends_with_stop(span) and not any(i in encoder.stop_ids for i in span[:-1])
        assert encoder.problems(tok) == []
        return
    for segment, end in zip(rendered.segments, tok.bounds):
        assert encoder.decode(ids[start:end]) == segment.text  # segment boundaries are token boundaries
        assert tok.mask[start:end] == [int(segment.train)] * (end - start)
        if segment.train:
            span = ids[start:end]
            assert encoder.ends_with_stop(span), "a trained span must end with the EOS / end-of-turn token"
            assert not any(i in encoder.stop_ids for i in span[:-1]), "and hold no other"
        start = end
    assert encoder.problems(tok) == []
    assert sum(tok.mask) == sum(e - s for s, e in tok.spans())


@pytest.mark.parametrize("name,template", [(n, t) for n, ts in TEMPLATES.items() for t in ts])
def test_invariants_hold_for_every_template_and_tokenizer(toks, name, template) -> None:
    plan = open_plan(template, toks[name])
    encoder = encoder_for(plan)
    kind = _kind_for(template)
    renderer = plan.renderer_for(kind)
    encoder.add_stop(renderer.eos)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(records(kind))
    def run(record) -> None:
        rendered = renderer.render(record, WHERE)
        assume(isinstance(rendered, Rendered))  # data holding the EOS string is rejected, tested elsewhere
        check_invariants(encoder, rendered)

    run()


def test_real_data_every_row_round_trips(toks, shared_data, tmp_path) -> None:
    import sftdata
    from sftdata.curate.samples import Sample, open_inputs, rendered, tokenized

    records = tmp_path / "chats.jsonl"
    sftdata.convert([shared_data / "glaive_toolcall_en_demo.json"], records, preset="sharegpt")
    for name, template in (("smollm2", "chat"), ("gemma3", "llama3")):
        plan = open_plan(template, toks[name])
        encoder = encoder_for(plan)
        values = list(tokenized(rendered(open_inputs([records]).records(), plan), plan, encoder))
        samples = [s for s in values if isinstance(s, Sample)]
        # SmolLM2's own template writes no tool calls: a turn that is only a call is a per-row reject
        rejects = [v for v in values if not isinstance(v, Sample)]
        assert {r.reason for r in rejects} <= {"turn_not_located"} and len(samples) + len(rejects) == 300
        assert len(samples) == (147 if name == "smollm2" else 300)
        for sample in samples:
            assert encoder.decode(sample.tokenized.input_ids) == encoder.expected_text(sample.rendered, sample.tokenized)
            assert encoder.problems(sample.tokenized) == []
            assert len(sample.tokenized.spans()) == sum(1 for m in sample.record.messages if m.role.value == "assistant")


def test_bos_added_once_for_gemma_and_never_for_smollm2(toks) -> None:
    rendered = Rendered([_seg("Q: hi\nA: ", False), _seg("hello<eos>", True)], WHERE)
    gemma = Encoder(toks["gemma3"])
    assert gemma.specials.adds_bos
    (tok,) = gemma.encode([rendered])
    assert tok.input_ids[0] == gemma.specials.bos_id and tok.input_ids.count(gemma.specials.bos_id) == 1
    with_bos = Rendered([_seg("<bos>Q: hi\nA: ", False), _seg("hello<eos>", True)], WHERE)
    (tok2,) = gemma.encode([with_bos])
    assert not tok2.bos_added and tok2.input_ids.count(gemma.specials.bos_id) == 1  # never two
    smol = Encoder(toks["smollm2"])
    assert not smol.specials.adds_bos
    (tok3,) = smol.encode([Rendered([_seg("Q: hi\nA: ", False), _seg("hello<|im_end|>", True)], WHERE)])
    assert not tok3.bos_added and tok3.input_ids[-1] == smol.specials.eos_id


def test_problems_are_detected(toks) -> None:
    smol = Encoder(toks["smollm2"])
    doubled = Rendered([_seg("Q ", False), _seg("a<|im_end|>b<|im_end|>", True)], WHERE)
    missing = Rendered([_seg("Q ", False), _seg("answer without stop", True)], WHERE)
    untrained = Rendered([_seg("Q only", False)], WHERE)
    assert smol.problems(smol.encode([doubled])[0]) == [Problem.eos_doubled]
    assert smol.problems(smol.encode([missing])[0]) == [Problem.eos_missing]
    assert smol.problems(smol.encode([untrained])[0]) == [Problem.nothing_trained]
    gemma = Encoder(toks["gemma3"])
    two = Rendered([_seg("<bos><bos>Q ", False), _seg("a<eos>", True)], WHERE)
    assert Problem.bos_doubled in gemma.problems(gemma.encode([two])[0])


def test_multi_token_eos_is_reported_not_a_stop(toks) -> None:
    encoder = Encoder(toks["smollm2"], stop_texts=["</s>"])
    assert "</s>" in encoder.multi_token_stops and len(encoder.multi_token_stops["</s>"]) > 1
    assert encoder.stop_ids == {toks["smollm2"].eos_token_id}


@pytest.mark.parametrize("name", ["smollm2", "gemma3"])
def test_offsets_fallback_keeps_text_and_masks(toks, name) -> None:
    """The strategy for tokenizers whose pieces do not concatenate, forced here on both."""
    encoder = Encoder(toks[name])
    assert encoder.strategy is Strategy.piecewise
    eos = toks[name].eos_token
    rendered = Rendered([_seg("### Q:\n안녕하세요\n\n### A:\n", False), _seg(f"네, 반갑습니다!{eos}", True),
                         _seg("\n", False)], WHERE)
    piecewise = encoder.encode([rendered])[0]
    encoder.strategy = Strategy.offsets
    whole = encoder.encode([rendered])[0]
    assert encoder.decode(whole.input_ids) == encoder.expected_text(rendered, whole)
    assert whole.mask == piecewise.mask and whole.input_ids == piecewise.input_ids
    assert encoder.problems(whole) == []


def test_token_texts_join_to_the_text(toks) -> None:
    encoder = Encoder(toks["smollm2"])
    rendered = Rendered([_seg("한국어 😀 text", False), _seg("답<|im_end|>", True)], WHERE)
    (tok,) = encoder.encode([rendered])
    assert "".join(token_texts(encoder, tok.input_ids)) == rendered.text


# --- the bound Encoder.screen applies before tokenizing: never above the real count ---------------

def _longest(encoder: Encoder, n: int = 12) -> list[str]:
    """The texts of the n tokens covering the most bytes (by their own decoding), whitespace runs included."""
    backend = encoder.backend
    size = backend.get_vocab_size(with_added_tokens=True)
    texts = backend.decode_batch([[i] for i in range(size)], skip_special_tokens=False)
    return sorted((t for t in texts if "\ufffd" not in t), key=lambda t: len(t.encode()), reverse=True)[:n]


_UNITS = _ALPHABET | st.sampled_from([" " * 97, "\n" * 41, "\t" * 33, "-" * 80, "=" * 64, "0" * 30, "▁" * 9,
                                       "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<start_of_turn>", "<eos>",
                                       "<bos>", "<unk>", "<0x41>", "ĠĠĠ", "\U0001fbf9", "\u212a", "\ufffd"])


@pytest.mark.parametrize("name", ["smollm2", "gemma3"])
def test_min_tokens_never_exceeds_the_real_count(toks, name) -> None:
    """Sound on both tokenizers and both strategies, for text built from the longest tokens and long
    runs: a sample that fits is never turned away before tokenizing."""
    encoder = Encoder(toks[name])
    bound = encoder.bound
    assert bound is not None and bound.shrink == 1 and not bound.skip_space
    longest = _longest(encoder)
    assert all(len(t.encode()) <= bound.longest for t in longest)  # every token's own text fits in L bytes
    units = _UNITS | st.sampled_from(longest)
    segment = st.tuples(st.lists(units, min_size=1, max_size=25).map("".join), st.integers(1, 40))

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(segment, min_size=1, max_size=3))
    def run(parts) -> None:
        rendered = Rendered([_seg(text * times, i == len(parts) - 1) for i, (text, times) in enumerate(parts)], WHERE)
        for strategy in Strategy:
            encoder.strategy = strategy
            (tok,) = encoder.encode([rendered])
            assert encoder.min_tokens(rendered) <= tok.length - int(tok.bos_added)

    run()
    encoder.strategy = Strategy.piecewise
    # Tight where the text is the longest token over and over: the bound is that count.
    top = longest[0]
    rendered = Rendered([_seg(top * 50, True)], WHERE)
    (tok,) = encoder.encode([rendered])
    assert encoder.min_tokens(rendered) <= tok.length - int(tok.bos_added) <= 50 * 2


def test_screen_rejects_over_the_character_cap_and_certain_overflow(toks) -> None:
    from sftdata.items import Reject, Stage
    from sftdata.tokenize.encode import MAX_SAMPLE_CHARS

    encoder = Encoder(toks["smollm2"])
    assert encoder.max_chars == MAX_SAMPLE_CHARS == 1_000_000
    small = Rendered([_seg("Q: hi\n", False), _seg("hello<|im_end|>", True)], WHERE)
    assert encoder.screen(small) is None and encoder.screen(small, max_tokens=8) is None  # 6 tokens: fits
    big = Rendered([_seg("x " * 600_000, False), _seg("y<|im_end|>", True)], WHERE)
    reject = encoder.screen(big)  # no drop limit: only the cap
    assert isinstance(reject, Reject) and (reject.stage, reject.reason) == (Stage.tokenize, "too_large")
    assert reject.message == "sample of 1,200,011 characters exceeds the 1,000,000-character limit for tokenizing"
    assert reject.locator == WHERE
    least = encoder.screen(big, max_tokens=2048)  # certainly over the limit: the caller words the reject
    assert isinstance(least, int) and least > 2048
    assert least <= encoder.min_tokens(big) and encoder.screen(big, max_tokens=least) is not None
    assert Encoder(toks["smollm2"], max_chars=10).screen(small).reason == "too_large"


def _fake(model, normalizer=None, pre_tokenizer=None, added=()):
    from types import SimpleNamespace

    from tokenizers import Tokenizer

    tok = Tokenizer(model)
    tok.normalizer, tok.pre_tokenizer = normalizer, pre_tokenizer
    if added:
        tok.add_tokens(list(added))
    return SimpleNamespace(backend_tokenizer=tok)


def test_token_bound_only_where_it_is_sound() -> None:
    """No bound where one token can cover text of any length or text can vanish before the model."""
    from tokenizers import AddedToken, normalizers, pre_tokenizers
    from tokenizers.models import BPE, Unigram, WordPiece

    from sftdata.tokenize.bound import UNICODE_SHRINK, TokenBound, token_bound

    def bpe(**kw):
        return BPE({"a": 0, "b": 1, "ab": 2, **({"<unk>": 3} if kw else {})}, [("a", "b")], **kw)

    assert token_bound(_fake(bpe())) == TokenBound(2)
    assert token_bound(_fake(bpe(unk_token="<unk>"))) == TokenBound(5)  # "<unk>": 5 bytes, one character
    assert token_bound(_fake(bpe(unk_token="<unk>", fuse_unk=True))) is None  # "xxxx…" is one token
    assert token_bound(_fake(WordPiece({"a": 0, "[UNK]": 1}, unk_token="[UNK]"))) is None
    assert token_bound(_fake(Unigram([("a", 0.0), ("<unk>", 0.0)], 1))) is None
    assert token_bound(_fake(bpe(), normalizers.NFKC())) == TokenBound(2, UNICODE_SHRINK)
    assert token_bound(_fake(bpe(), normalizers.Sequence([normalizers.Replace(" ", "▁"), normalizers.Prepend("▁")]))
                       ) == TokenBound(2)  # they only add text
    assert token_bound(_fake(bpe(), normalizers.Replace("abc", "d"))) == TokenBound(2, 3)
    for vanishing in (normalizers.Strip(), normalizers.StripAccents(), normalizers.Replace(" ", ""),
                      normalizers.BertNormalizer()):
        assert token_bound(_fake(bpe(), vanishing)) is None
    for dropping in (pre_tokenizers.Whitespace(), pre_tokenizers.Split(" ", "removed")):
        assert token_bound(_fake(bpe(), None, dropping)) is None
    assert token_bound(_fake(bpe(), None, pre_tokenizers.Sequence([pre_tokenizers.Digits(),
                                                                  pre_tokenizers.ByteLevel()]))) == TokenBound(2)
    # A token that strips the whitespace beside it swallows any amount: only the rest counts.
    stripping = token_bound(_fake(bpe(), added=[AddedToken("<x>", rstrip=True)]))
    assert stripping == TokenBound(3, 1, True) and stripping.covered_bytes("<x>" + " \n" * 1000) == 3
    assert token_bound(object()) is None  # no `tokenizers` backend


def test_a_stripping_added_token_keeps_the_bound_sound(smollm2_tokenizer_dir) -> None:
    from types import SimpleNamespace

    from tokenizers import AddedToken, Tokenizer

    from sftdata.tokenize.bound import token_bound

    tok = Tokenizer.from_file(str(smollm2_tokenizer_dir / "tokenizer.json"))
    tok.add_tokens([AddedToken("<x>", lstrip=True, rstrip=True)])
    text = "a" + " " * 20_000 + "<x>" + "\n" * 20_000 + "b"
    bound = token_bound(SimpleNamespace(backend_tokenizer=tok))
    assert bound.skip_space
    assert bound.min_tokens(bound.covered_bytes(text)) <= len(tok.encode(text, add_special_tokens=False).ids) == 3


def _seg(text: str, train: bool):
    from sftdata.items import Segment

    return Segment(text, train)
