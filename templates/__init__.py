"""Prompt templates shipped with sftdata (installed as ``sftdata.templates``).

Prompt text lives only in the ``.jinja`` files beside this module; this registry says which file
a name means, what records it renders and, for built-in chat formats, their end-of-turn token.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

HERE = Path(__file__).resolve().parent

TemplateKind = Literal["instruction", "qa", "chat"]


@dataclass(frozen=True, slots=True)
class BuiltinTemplate:
    name: str
    file: str
    kind: TemplateKind
    language: str
    description: str
    end_of_turn: str | None = None  # built-in chat formats know their own EOS

    @property
    def path(self) -> Path:
        return HERE / self.file


BUILTIN: dict[str, BuiltinTemplate] = {t.name: t for t in (
    BuiltinTemplate("alpaca", "alpaca.jinja", "instruction", "en",
                    "The original Stanford Alpaca prompt, with its with-input and no-input variants."),
    BuiltinTemplate("alpaca_ko", "alpaca_ko.jinja", "instruction", "ko",
                    "The Korean Alpaca prompt (### instruction / ### input / ### output)."),
    BuiltinTemplate("qa_ko", "qa_ko.jinja", "qa", "ko",
                    "Korean Q&A: ### 질문: … ### 답변: …; the prompt ends at the colon, the answer starts with the space."),
    BuiltinTemplate("chatml", "chatml.jinja", "chat", "any", "ChatML turns (<|im_start|>role … <|im_end|>).",
                    end_of_turn="<|im_end|>"),
    BuiltinTemplate("chatml_think", "chatml_think.jinja", "chat", "any",
                    "ChatML with each assistant turn's reasoning in a <think> block (history too); "
                    "--template-arg enable_thinking=false prefills an empty block at inference.",
                    end_of_turn="<|im_end|>"),
    BuiltinTemplate("llama3", "llama3.jinja", "chat", "any", "Llama 3 header/eot turns.",
                    end_of_turn="<|eot_id|>"),
)}

# "chat" means: the tokenizer's own chat_template, or this built-in one when no tokenizer is given.
CHAT = "chat"
CHAT_FALLBACK = "chatml"


@dataclass(frozen=True, slots=True)
class SynthTemplate:
    """A prompt for `sftdata synth`: blocks `system` and `user`, rendered with the mode's variables."""

    name: str
    file: str
    mode: Literal["self-instruct", "answer", "evolve", "judge"]
    language: str
    description: str

    @property
    def path(self) -> Path:
        return HERE / self.file


SYNTH: dict[str, SynthTemplate] = {t.name: t for t in (
    SynthTemplate("synth_self_instruct_en", "synth_self_instruct_en.jinja", "self-instruct", "en",
                  "Few-shot seed tasks → new tasks with inputs and outputs (variables: examples, count)."),
    SynthTemplate("synth_self_instruct_ko", "synth_self_instruct_ko.jinja", "self-instruct", "ko",
                  "Korean self-instruct: 예시 과제 → 새 과제와 답 (variables: examples, count)."),
    SynthTemplate("synth_answer_en", "synth_answer_en.jinja", "answer", "en",
                  "Write the output of an instruction (variables: instruction, input, examples)."),
    SynthTemplate("synth_answer_ko", "synth_answer_ko.jinja", "answer", "ko",
                  "Korean answer: 지시문에 대한 답 (variables: instruction, input, examples)."),
    SynthTemplate("synth_evolve_en", "synth_evolve_en.jinja", "evolve", "en",
                  "Rewrite a task into a harder/more specific one and answer it (variables: instruction, input, "
                  "output, method)."),
    SynthTemplate("synth_evolve_ko", "synth_evolve_ko.jinja", "evolve", "ko",
                  "Korean evolve: 더 어렵거나 구체적인 과제와 답 (variables: instruction, input, output, method)."),
)}

# Prompts of `sftdata eval`'s pairwise judge (sftdata.evaluation.judge): the same blocks as synth's.
JUDGE: dict[str, SynthTemplate] = {t.name: t for t in (
    SynthTemplate("judge_pairwise_ko", "judge_pairwise_ko.jinja", "judge", "ko",
                  "Korean judge: 질문 하나에 대한 두 답변(A, B) 중 더 나은 것 (variables: question, reference, answer_a, answer_b)."),
    SynthTemplate("judge_pairwise_en", "judge_pairwise_en.jinja", "judge", "en",
                  "Which of two answers (A, B) to one question is better (variables: question, reference, answer_a, "
                  "answer_b)."),
)}
