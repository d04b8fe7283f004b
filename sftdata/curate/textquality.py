"""Checks on the text itself: script share (language mix), mojibake, refusal phrases.

Used by `filter` (to drop rows) and `audit` (to report them); pure functions on strings.
"""
from __future__ import annotations

import re
from enum import Enum

from ..errors import OptionError

# Characters of the script each language is written in (letters only; digits and punctuation are
# neutral). Japanese counts kana and kanji, Chinese the unified ideographs.
SCRIPTS: dict[str, str] = {
    "ko": "\u1100-\u11ff\u3130-\u318f\ua960-\ua97f\uac00-\ud7af\ud7b0-\ud7ff",
    "zh": "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff",
    "ja": "\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff",
    "en": "A-Za-z",
    "latin": "A-Za-z\u00c0-\u024f",
    "ru": "\u0400-\u04ff",
}
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)
_SCRIPT_RE = {lang: re.compile(f"[{chars}]") for lang, chars in SCRIPTS.items()}


def check_lang(lang: str) -> str:
    if lang not in SCRIPTS:
        raise OptionError("is not a language sftdata knows", option="lang", value=lang, hint=f"use one of {', '.join(SCRIPTS)}")
    return lang


def script_share(text: str, lang: str) -> float | None:
    """Share of the letters of `text` written in the script of `lang` (None when it has no letters)."""
    letters = len(_LETTER.findall(text))
    if not letters:
        return None
    return len(_SCRIPT_RE[check_lang(lang)].findall(text)) / letters


DOMINANT = ("ko", "en", "zh", "ja", "ru")  # zh before ja: kanji alone reads as Chinese, kana makes it Japanese
_SCRIPT_RUNS = {lang: re.compile(f"[{SCRIPTS[lang]}]+") for lang in DOMINANT}  # runs: fewer matches to count


def dominant_script(text: str) -> str | None:
    """The language whose script holds the most letters of `text` (of DOMINANT), "other" when its letters are in
    none of them, None when it has no letters."""
    counts = [sum(map(len, _SCRIPT_RUNS[lang].findall(text))) for lang in DOMINANT]
    best = max(range(len(DOMINANT)), key=counts.__getitem__)
    if counts[best]:
        return DOMINANT[best]
    return "other" if _LETTER.search(text) else None


class Mojibake(str, Enum):
    cp1252 = "cp1252"  # UTF-8 bytes read as Windows-1252 (or Latin-1): "ì•ˆë…•", "cafÃ©"
    cp949 = "cp949"  # UTF-8 bytes read as CP949/EUC-KR: "諛섍컩", usually next to "�"
    replacement = "replacement"  # U+FFFD: bytes were lost when the text was decoded


# Runs of characters that UTF-8 lead/continuation bytes turn into under cp1252 / Latin-1.
_CP1252_RUN = re.compile("[\u0080-\u00ff\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc"
                         "\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]{2,}")
_HANGUL = re.compile("[\uac00-\ud7a3]")
_CJK_RUN = re.compile("[\uac00-\ud7a3\u4e00-\u9fff\uf900-\ufaff]{3,}")


def _cp1252_bytes(run: str) -> bytes | None:
    out = bytearray()
    for char in run:
        try:
            out += char.encode("cp1252")
        except UnicodeEncodeError:
            if ord(char) > 0xFF:
                return None
            out.append(ord(char))  # the five bytes cp1252 leaves undefined come through as Latin-1
    return bytes(out)


def mojibake(text: str) -> Mojibake | None:
    """How the text looks mis-decoded, if it does: a run that becomes valid UTF-8 with non-ASCII
    text when encoded back with cp1252 (or cp949, giving Hangul), or a replacement character."""
    for match in _CP1252_RUN.finditer(text):
        raw = _cp1252_bytes(match.group())
        if raw is None:
            continue
        try:
            fixed = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if fixed != match.group() and any(ord(c) > 0x7F for c in fixed):
            return Mojibake.cp1252
    for match in _CJK_RUN.finditer(text):
        try:
            raw = match.group().encode("cp949")
        except UnicodeEncodeError:
            continue
        fixed = raw.decode("utf-8", errors="replace")
        hangul = len(_HANGUL.findall(fixed))
        if hangul >= 2 and hangul >= fixed.count("\ufffd"):
            return Mojibake.cp949
    if "\ufffd" in text:
        return Mojibake.replacement
    return None


_REFUSALS = [
    r"\bas an ai(?: language model| assistant| model)?\b",
    r"\bi(?:'m| am) (?:sorry|afraid),? (?:but )?i (?:can(?:not|'t)|am unable to|won't|am not able to)\b",
    r"\bi (?:can(?:not|'t)|am unable to|am not able to) (?:assist|help|comply|provide|fulfill)\b",
    r"\bi don't have (?:personal )?(?:opinions|feelings|the ability)\b",
    r"(?:ai|인공지능) ?(?:언어 ?모델|어시스턴트)(?:로서|으로서)",
    r"죄송(?:하지만|합니다만|합니다\.?) .{0,40}(?:수 없|드릴 수 없|어렵습니다)",
    r"(?:도와|답변해|제공해) ?드릴 수 없습니다",
    r"作为一个?(?:人工智能|ai|语言模型)",
    r"(?:抱歉|对不起)[，,]?\s*我(?:无法|不能)",
]
_REFUSAL = re.compile("|".join(f"(?:{p})" for p in _REFUSALS), re.IGNORECASE)


def refusal(text: str) -> str | None:
    """The refusal phrase found in an answer (English, Korean, Chinese), or None."""
    match = _REFUSAL.search(text)
    return match.group() if match else None
