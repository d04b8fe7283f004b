"""What `sftdata audit` can find: for each code, its severity, what breaks in training, and the fix."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Severity(str, Enum):
    error = "error"
    warning = "warning"
    info = "info"


class Trainer(str, Enum):
    generic = "generic"  # a collator that masks labels by pad id (transformers DataCollatorForLanguageModeling)
    trl = "trl"  # TRL >= 1.0 SFTTrainer: masks by attention mask / position
    sftdata = "sftdata"  # sftdata pretokenize output: masks are positions


@dataclass(frozen=True, slots=True)
class Finding:
    code: str
    severity: Severity
    title: str
    count: int
    examples: list[str]
    breaks: str
    fix: str
    samples: list[list[tuple[str, str]]] = field(default_factory=list)  # a few samples as (token text, kind)

    def as_dict(self) -> dict[str, Any]:
        out = {"code": self.code, "severity": self.severity.value, "title": self.title, "count": self.count,
               "examples": self.examples, "breaks": self.breaks, "fix": self.fix}
        if self.samples:
            out["samples"] = [[list(t) for t in sample] for sample in self.samples]
        return out


@dataclass(frozen=True, slots=True)
class Check:
    severity: Severity
    title: str
    breaks: str
    fix: str
    by_trainer: tuple[tuple[Trainer, Severity], ...] = ()

    def finding(self, code: str, count: int, examples: list[str], trainer: Trainer,
                samples: list[list[tuple[str, str]]] | None = None) -> Finding:
        severity = dict(self.by_trainer).get(trainer, self.severity)
        return Finding(code, severity, self.title, count, examples, self.breaks, self.fix, list(samples or []))


_TRUNC_FIX = ("raise --max-seq-length, drop them (`sftdata filter --max-tokens N`, or `sftdata pretokenize` whose "
              "default --on-overflow drop does), or `sftdata pretokenize --on-overflow truncate`, which cuts the "
              "prompt first and always keeps the completion's end and its EOS")

E, W, I = Severity.error, Severity.warning, Severity.info

CHECKS: dict[str, Check] = {
    "pad_is_eos": Check(
        E, "pad token is the EOS token (or unset, and recipes then set it to EOS)",
        "a collator that masks labels where input_ids == pad_token_id (transformers' "
        "DataCollatorForLanguageModeling, older TRL collators) masks every EOS too: the model never learns to "
        "stop and generates until max_new_tokens",
        "give the tokenizer a pad token distinct from EOS (e.g. tokenizer.pad_token = tokenizer.unk_token, or add "
        "'<|pad|>' and resize the embeddings), or use a collator that masks by position: TRL >= 1.0 SFTTrainer, "
        "or `sftdata pretokenize` output",
        ((Trainer.trl, W), (Trainer.sftdata, W))),
    "tokenizer_adds_eos": Check(
        W, "the tokenizer appends EOS by itself",
        "the rendered text already ends each answer with EOS; a trainer that tokenizes the text with special "
        "tokens appends a second one",
        "train on `sftdata pretokenize` output, or tokenize with add_special_tokens=False"),
    "eos_not_single_token": Check(
        E, "the EOS string is not one token of this tokenizer",
        "the EOS text is split into ordinary tokens, so the model never emits the EOS id and generation does not "
        "stop",
        "use the tokenizer's own eos_token (drop --eos), or add the string as a special token"),
    "eos_missing": Check(
        E, "trained span without a final EOS / end-of-turn token",
        "the model is never shown where the answer ends, so it does not learn to stop",
        "render with the tokenizer's EOS (sftdata does by default); check a custom template's completion block"),
    "eos_doubled": Check(
        E, "trained span with more than one EOS / end-of-turn token",
        "the model learns to stop in the middle of an answer, or to go on after a stop",
        "remove EOS / end-of-turn strings from the data and from the template's completion block"),
    "eos_in_data": Check(
        E, "the EOS string appears inside the data",
        "any pipeline that renders these rows puts an EOS in the middle of the sample: the model learns to stop "
        "early (sftdata's renderer rejects these rows)",
        "strip the EOS string from the source text"),
    "bos_doubled": Check(
        E, "two BOS tokens at the start",
        "the model sees a sequence start it never saw in pre-training, on every sample",
        "remove {{ bos_token }} from the template, or tokenize with add_special_tokens=False"),
    "bos_in_text": Check(
        W, "the rendered text starts with BOS and the tokenizer adds one itself (template plus tokenizer)",
        "a trainer that tokenizes the text (TRL's text field, tokenizer(text)) gets two BOS on every sample",
        "remove {{ bos_token }} from the template, or train on `sftdata pretokenize` output, which adds it once"),
    "nothing_trained": Check(
        E, "samples where no token carries a loss (fully masked)",
        "every label is -100: no learning signal, and a batch of them gives a NaN or zero loss",
        "check the template's prompt/completion blocks: the completion must not be empty"),
    "fully_truncated": Check(
        E, "samples whose trained tokens all lie beyond max_seq_length",
        "truncation leaves only prompt tokens: the sample is fully masked, trains nothing, and can give a NaN loss",
        _TRUNC_FIX),
    "eos_truncated": Check(
        W, "samples whose completion end and EOS are cut by max_seq_length",
        "the model trains on cut answers without their EOS, and learns to stop nowhere",
        _TRUNC_FIX),
    "over_limit": Check(
        I, "samples longer than max_seq_length where only untrained tail tokens are cut",
        "nothing the model learns from is lost",
        "none needed"),
    "empty_answer": Check(
        W, "empty or whitespace-only answers (rejected rows)",
        "an empty answer teaches the model to reply with EOS alone",
        "fix the source rows, or leave them out (sftdata rejects them)"),
    "invalid_rows": Check(
        W, "rows that are not valid records (rejected)",
        "they are left out of training; a systematic cause (mapping, encoding) may drop far more than expected",
        "read OUT.rejects.jsonl or run `sftdata validate FILE --rejects R.jsonl`"),
    "exact_duplicates": Check(
        W, "exact duplicates (same prompt after normalisation)",
        "duplicates over-weight some prompts: the model memorises them, and contradicting answers add noise",
        "`sftdata dedup FILE -o OUT`"),
    "near_duplicates": Check(
        W, "near duplicates (prompt Jaccard similarity over character n-grams >= threshold)",
        "near duplicates over-weight some prompts and inflate evaluation on similar prompts",
        "`sftdata dedup FILE -o OUT --threshold J`"),
    "eval_overlap": Check(
        E, "rows whose prompt is (nearly) the same as an eval row",
        "eval loss then measures memorisation, not generalisation",
        "`sftdata dedup TRAIN -o OUT --against EVAL`, or split with `sftdata split --group-near-dups`"),
    "mojibake": Check(
        W, "mojibake: UTF-8 text decoded as cp1252 or cp949 (or lost bytes shown as U+FFFD)",
        "the model learns garbled characters and may produce them",
        "re-read the source with the right encoding (`sftdata convert --encoding cp949` or utf-8), or repair "
        "the text"),
    "pii": Check(
        W, "personal information in the text (registration numbers, phones, e-mail, cards, accounts, addresses, ...)",
        "a model trained on it can repeat it to anyone who asks (a resident registration number or a phone number "
        "is enough); under the PIPA such data should not leave the security zone unmasked",
        "`sftdata scrub FILE -o OUT` masks each hit with a typed placeholder ([전화번호], [주민등록번호], ...); "
        "`--action drop` drops the rows instead"),
    "language_mix": Check(
        W, "rows with a low share of letters in the expected script",
        "a Korean (or other) model trained on other-language answers switches language",
        "`sftdata filter FILE -o OUT --lang LANG --min-lang-share 0.5`"),
    "chat_template_missing": Check(
        E, "the tokenizer has no chat template (base models, and Gemma's GGUF, carry none)",
        "`--template chat` cannot render these chats; the audit went on with chatml, whose markers may not be "
        "tokens of this model",
        "pass --template with the model family's format (a .jinja file, e.g. Gemma's <start_of_turn>user ... "
        "<end_of_turn>), or use the instruct model's tokenizer, which carries its template"),
    "template_mismatch": Check(
        W, "the chat template does not match the model family",
        "its markers are not special tokens of this tokenizer: each becomes several ordinary tokens the model has "
        "no prior for, and inference with the model's own format differs from training",
        "use --template chat (the tokenizer's own) or a template with the family's markers"),
    "special_token_in_text": Check(
        E, "special tokens of the tokenizer inside the data (rejected rows)",
        "a literal <|im_start|>, <|endoftext|> or similar in a message is tokenized as the control token: the model "
        "is trained to emit turn markers or stops in the middle of text",
        "remove or escape those strings in the source (the rows are in OUT.rejects.jsonl with the field)"),
    "turn_not_located": Check(
        E, "assistant turns the chat template renders in a way sftdata cannot locate (rejected rows)",
        "those rows are left out of training",
        "check the template renders each assistant message's content; add {% generation %} blocks to say "
        "exactly what is trained"),
    "reasoning_dropped": Check(
        E, "reasoning in the data that the template drops from a trained turn",
        "the model is trained on answers without the reasoning it was given (DeepSeek-R1-Distill drops every "
        "think block; EXAONE 4.0 does by default; Qwen3 drops it from earlier turns): it learns to answer "
        "without thinking, or the reasoning data is wasted",
        "EXAONE 4.0: --template-arg skip_think=false; Qwen3 multi-turn: --train-on last (or per-message "
        "weight); DeepSeek-R1-Distill or any model: a template that keeps the think block "
        "(--template chatml_think), or drop reasoning_content if answers alone are wanted"),
    "content_dropped": Check(
        W, "text beside a tool call that the template drops from the trained turn",
        "Llama 3.x, DeepSeek-V3 and gpt-oss render a turn that calls a tool as the call alone: the model is "
        "trained on the call, and the words the data has before it are never seen",
        "nothing, when the call alone is what the model should learn; else move that text into its own "
        "assistant turn before the call, or use a template that renders both (Qwen3)"),
    "history_differs": Check(
        W, "earlier assistant turns trained in a different form than the template gives them as the last turn",
        "with --train-on all, a turn is trained as the template renders it in history (Qwen3: without its think "
        "block) while the model generates it as the last turn: training and inference disagree",
        "--train-on last, or weight 0 on earlier turns (OpenAI's format), so each trained turn is rendered as at "
        "inference; or split multi-turn rows into one row per turn"),
    "reasoning_mixed": Check(
        W, "a mix of rows with and without reasoning",
        "the model learns both to think and not to think for the same kind of prompt; with a thinking template "
        "the rows without reasoning train an empty think block",
        "keep one policy per dataset: add reasoning, or strip it (and render with enable_thinking=false)"),
    "empty_think_trained": Check(
        I, "empty think blocks that carry a loss",
        "the model is trained to open and close a think block with nothing in it",
        "fine for hybrid-thinking models trained to skip thinking; else --template-arg enable_thinking=false "
        "(the block becomes prompt, as at inference) or add reasoning"),
    "unclosed_think": Check(
        E, "a <think> without its </think> (or the reverse) in a message",
        "the template cannot split reasoning from answer: the answer is trained as reasoning, or lost",
        "repair the rows, or move the reasoning into reasoning_content"),
    "template_reads_date": Check(
        W, "the template writes the current date (strftime_now) and no date_string is pinned",
        "the same data renders differently each day: content hashes, dedup and cached synth requests change",
        "--template-arg date_string='26 Jul 2024' (any fixed date)"),
    "prompt_format_differs": Check(
        I, "instruction records rendered with a plain prompt while the tokenizer has a chat template",
        "an instruct model used through its chat template at inference sees a different format than in training",
        "for an instruct model render with --template chat (records convert to chats); keep it for a base model"),
}
