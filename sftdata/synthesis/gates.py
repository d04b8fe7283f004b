"""Quality gates for generated records: length bounds, a deny list, an optional language check and
novelty against the seeds and everything accepted so far. Each failed gate names a reason code,
the key of the summary's `by_reason` counts.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..schemas.records import InstructionRecord
from .novelty import NoveltyIndex, normalise

# Words that mark a task a text-only model cannot do (self-instruct's filter list, plus Korean).
DEFAULT_DENY = (
    "image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps",
    "draw", "plot", "go to", "video", "audio", "music", "flowchart", "diagram",
    "이미지", "그림을 그", "사진", "동영상", "오디오", "음악 파일", "다이어그램", "순서도",
    "as an ai language model", "ai 언어 모델로서",
)


@dataclass(frozen=True, slots=True)
class Verdict:
    reason: str
    message: str


def load_deny_list(path: str | Path | None) -> tuple[str, ...]:
    """The default list, or one phrase per line of a UTF-8 file (blank lines and #comments skipped)."""
    if path is None:
        return DEFAULT_DENY
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read the deny list: {error}", file=str(path)) from None
    return tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))


def _hangul(char: str) -> bool:
    code = ord(char)
    return 0xAC00 <= code <= 0xD7A3 or 0x1100 <= code <= 0x11FF or 0x3130 <= code <= 0x318F


def _latin(char: str) -> bool:
    return char.isascii() or unicodedata.name(char, "").startswith("LATIN")


def script_share(text: str, lang: str) -> float | None:
    """Share of the letters that belong to the language's script (None when there are too few letters)."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return None
    test = _hangul if lang == "ko" else _latin
    return sum(map(test, letters)) / len(letters)


@dataclass
class Gates:
    min_instruction_chars: int = 5
    max_instruction_chars: int = 2000
    min_output_chars: int = 1
    max_output_chars: int = 10000
    deny: tuple[str, ...] = DEFAULT_DENY
    lang: str | None = None  # when set, check that instruction and output are written in it
    min_script_share: float = 0.5
    novelty: NoveltyIndex | None = None  # None: no novelty check (answer mode)
    _deny_res: list[tuple[str, re.Pattern[str]]] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        # Korean attaches particles to words (그림을, 사진이), so Hangul phrases match anywhere;
        # other phrases match whole words only ("map" must not catch "mapping").
        for word in self.deny:
            norm = normalise(word)
            if norm:
                pattern = re.escape(norm) if any(map(_hangul, norm)) else rf"(?<!\w){re.escape(norm)}(?!\w)"
                self._deny_res.append((norm, re.compile(pattern)))

    def check(self, record: InstructionRecord) -> Verdict | None:
        """The first gate the record fails, or None when it passes them all."""
        for name, text, low, high in (
                ("instruction", record.instruction, self.min_instruction_chars, self.max_instruction_chars),
                ("output", record.output, self.min_output_chars, self.max_output_chars)):
            size = len(text.strip())
            if size < low:
                return Verdict("too_short", f"{name} has {size} characters, fewer than {low}")
            if size > high:
                return Verdict("too_long", f"{name} has {size} characters, more than {high}")
        if not any(c.isalpha() for c in record.output):
            return Verdict("no_letters", f"the output has no letters ({record.output.strip()[:20]!r})")
        answer = normalise(record.output)
        if answer in {normalise(record.instruction), normalise(record.input or "")} - {""}:
            return Verdict("repeats_question", "the output only repeats the instruction or its input")
        text = normalise(record.instruction + "\n" + record.input)
        for word, pattern in self._deny_res:
            if pattern.search(text):
                return Verdict("denied_word", f"instruction contains the denied phrase {word!r}")
        if self.lang:
            for name, text in (("instruction", record.instruction), ("output", record.output)):
                share = script_share(text, self.lang)
                if share is not None and share < self.min_script_share:
                    return Verdict("wrong_language", f"{name} is not written in {self.lang!r} "
                                   f"({share:.0%} of its letters are in that script)")
        if self.novelty is not None:
            novel, match = self.novelty.is_novel(novelty_text(record))
            if not novel:
                return Verdict("too_similar", f"similarity {match.score:.2f} to {match.label} "
                               f"(threshold {self.novelty.threshold})")
        return None


def novelty_text(record: InstructionRecord) -> str:
    """What novelty compares: the instruction and its input."""
    return f"{record.instruction}\n{record.input}" if record.input else record.instruction
