"""`sftdata decontaminate`: training rows that hold an eval item, found by long character n-grams.

Text on both sides is normalised as dedup normalises it (NFKC, casefold) and then reduced to its letters
and digits: spaces and punctuation go, so moved spaces (`한글을 창제한` / `한글을창제한`) and changed
punctuation do not hide a copy. An eval item (its prompt side by default: instruction + input, question +
context, user turns; each field and turn on its own, so a copied question is found however long its
reading passage, and a copied passage whatever its question) is cut into character n-grams (n = 4 where most characters are Hangul, CJK or
kana, whose syllables carry more than a letter does; 8 otherwise; `ngram` sets one n for all). A
training row (all of its text) is contaminated by an item when the n-grams they share cover at least
`threshold` of the item's characters, or when they share one run of at least `min_span` characters (a
long passage of a reading-comprehension context quoted without its question). At either end of the item, a
piece shorter than n that the row holds just past the matched run counts too: an edited last word
(`…소기관은 무엇인가요` / `…소기관은 어디인가요`) shares no n-gram with `인가요`, yet the row holds it. Word n-grams
do poorly on Korean, where a changed particle (`이`/`은`) changes the whole eojeol; shared character n-grams
still cover everything but the changed syllable, so `세종대왕은 한글을 창제한 연도가 언제인가요` covers 89% of
`세종대왕이 한글을 창제한 연도는 언제인가?`, as does the same question with one word replaced, while
`일본의 수도는 어디인가요?` covers 69% of `대한민국의 수도는 어디인가요?`. The default threshold, 0.73, is the highest
that finds 95% of one-word edits of generated Korean questions (bench/decontaminate_bench.py, docs/curation.md).

What this cannot tell apart: a short templated question asked of another entity (`지리산이 국립공원으로
지정된 연도는?` against `한라산이 …`) covers as much of the item as a copy with one word replaced does, and
is reported; raise `threshold` for eval sets of short templated questions, and read the matched spans.

n-grams found in more than `common` eval items (the `다음 중 옳은 것은` of a multiple-choice set, a common
`…은 무엇인가요`) say nothing about any one item: they are left out of the lookup, so a row that shares only
them is no candidate, but they count toward the coverage of an item the row shares its own n-grams with.
"""
from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import OptionError
from ..ingest.mapping import Mapped
from ..ingest.records import record_row
from ..items import Locator, Reject, Stage
from ..provenance import build_meta
from ..storage import location
from ..writers import atomic_or_null, dumps_line, file_digest, meta_path, rejects_path, sidecar_path, write_json
from . import evalsets
from .fields import Side, check_fields, record_text
from .minhash import normalise
from .results import CurateResult, Progress, Ticker
from .samples import open_inputs

DEFAULT_THRESHOLD = 0.73  # measured: bench/decontaminate_bench.py
DEFAULT_MIN_SPAN = 50
COMMON = 20
EDGE_SLACK = 8  # characters an edited word at either end may have grown by
_DENSE = ((0x1100, 0x11FF), (0x3040, 0x30FF), (0x3130, 0x318F), (0x3400, 0x4DBF), (0x4E00, 0x9FFF),
          (0xAC00, 0xD7AF), (0xF900, 0xFAFF))


def compact(norm: str) -> tuple[str, list[int]]:
    """A normalised text's letters and digits, and where each stands in it."""
    keep = [i for i, ch in enumerate(norm) if ch.isalnum()]
    return "".join(norm[i] for i in keep), keep


def auto_n(text: str) -> int:
    dense = sum(1 for ch in text if any(lo <= ord(ch) <= hi for lo, hi in _DENSE))
    return 4 if dense * 2 >= len(text) else 8


@dataclass(slots=True)
class EvalItem:
    file: str
    locator: Locator
    n: int
    grams: dict[str, list[int]]  # its n-grams and where each starts in its compact text
    text: str  # its compact text
    common: int = 0  # characters covered by n-grams that more than `common` items hold (set by EvalIndex.prune)

    def covered(self, shared: Iterable[str]) -> set[int]:
        """Where its characters are covered by the shared n-grams."""
        return {p for gram in shared for start in self.grams[gram] for p in range(start, start + self.n)}

    def share(self, covered: set[int], row: str, at: dict[str, list[int]]) -> float:
        """The share of its characters a text holds: those the shared n-grams cover (`covered`, not empty), and
        at either end a piece shorter than n found just past the matched run (`…소기관은 무엇인가요` /
        `…소기관은 어디인가요` share no n-gram holding `인가요`, yet the text holds it right after the edited word)."""
        covered = set(covered)
        n, text = self.n, self.text
        first, last = min(covered), max(covered)
        tail, head = len(text) - 1 - last, first
        for k in range(min(n - 1, tail), 1, -1):  # the last shared n-gram is text[last-n+1 : last+1]
            if any(text[-k:] in row[r + n:r + n + tail + EDGE_SLACK] for r in at[text[last - n + 1:last + 1]]):
                covered.update(range(len(text) - k, len(text)))
                break
        for k in range(min(n - 1, head), 1, -1):
            if any(text[:k] in row[max(r - head - EDGE_SLACK, 0):r] for r in at[text[first:first + n]]):
                covered.update(range(k))
                break
        return len(covered) / len(text)


@dataclass(slots=True)
class EvalIndex:
    """n-gram → eval items holding it, for every n in use."""

    items: list[EvalItem] = field(default_factory=list)
    by_n: dict[int, dict[str, list[int]]] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # per eval file: items, rejected, found, held, warning
    seen: set[tuple[str, str]] = field(default_factory=set)  # (file, compact text) indexed

    def add(self, text: str, locator: Locator, file: str, n: int | None) -> None:
        body, _ = compact(normalise(text))
        if not body or (file, body) in self.seen:  # a passage shared by its questions is one item, not one per question
            return
        self.seen.add((file, body))
        size = min(n or auto_n(body), len(body))
        own: dict[str, list[int]] = {}
        for i in range(len(body) - size + 1):
            own.setdefault(body[i:i + size], []).append(i)
        number = len(self.items)
        self.items.append(EvalItem(file, locator, size, own, body))
        table = self.by_n.setdefault(size, {})
        for gram in own:
            table.setdefault(gram, []).append(number)

    def prune(self, common: int) -> int:
        """Take n-grams held by more than `common` items out of the lookup (they alone never make a match; the
        items keep them, so they count toward coverage once a row shares an item's own); returns how many."""
        dropped = 0
        for table in self.by_n.values():
            for gram in [g for g, owners in table.items() if len(owners) > common]:
                for owner in table.pop(gram):
                    self.items[owner].common += 1  # n-grams for now; characters below
                dropped += 1
        for item in self.items:
            if item.common:
                table = self.by_n[item.n]
                item.common = len(item.covered(g for g in item.grams if g not in table))
        return dropped


@dataclass(frozen=True, slots=True)
class Match:
    item: int
    containment: float
    span: str


def read_eval(against: Sequence[str | os.PathLike[str]], n: int | None, fields: Side | Sequence[str],
              preset: str | None, mapping: str | None) -> EvalIndex:
    """The eval files' items, indexed (sftdata.curate.evalsets reads them and says what it could not)."""
    index = EvalIndex()
    evalsets.read_eval(index, against, n, fields, preset, mapping)
    return index


def matches(text: str, index: EvalIndex, threshold: float, min_span: int) -> Match | None:
    """The eval item this text is contaminated by (the one it holds most of), or None."""
    norm = normalise(text)
    body, positions = compact(norm)
    if not body:
        return None
    best: Match | None = None
    for n, table in index.by_n.items():
        hits: dict[int, set[str]] = {}  # items that share one of their own (not common) n-grams with the text
        for i in range(max(len(body) - n + 1, 1)):
            owners = table.get(body[i:i + n])
            if owners:
                for item in owners:
                    hits.setdefault(item, set()).add(body[i:i + n])
        grams: dict[str, list[int]] | None = None
        for number, own in hits.items():
            item = index.items[number]
            need, ends = threshold * len(item.text), 2 * (n - 1)  # ends: the most the pieces at the ends can add
            most = len(item.covered(own)) + item.common  # at most this many characters with the common n-grams too
            if most + ends < need and most < min_span:
                continue
            if grams is None:
                grams = {}
                for i in range(max(len(body) - n + 1, 1)):
                    grams.setdefault(body[i:i + n], []).append(i)
            shared = [g for g in item.grams if g in grams] if len(item.grams) < len(grams) else \
                [g for g in grams if g in item.grams]
            covered = item.covered(shared)
            if len(covered) + ends < need and len(covered) < min_span:
                continue
            share = item.share(covered, body, grams)
            run = None
            if share < threshold:
                run = _longest_run(sorted(s for g in shared for s in grams[g]), n)
                if run[1] - run[0] < min_span:
                    continue
            if best is None or (share, -number) > (best.containment, -best.item):  # ties: the first eval item
                run = run or _longest_run(sorted(s for g in shared for s in grams[g]), n)
                best = Match(number, min(share, 1.0), norm[positions[run[0]]:positions[run[1] - 1] + 1])
    return best


def _longest_run(starts: list[int], n: int) -> tuple[int, int]:
    """The longest stretch [a, b) of the compact text covered by overlapping matched n-grams."""
    best = (starts[0], starts[0] + n)
    a, b = best
    for s in starts[1:]:
        if s < b:
            b = max(b, s + n)
        else:
            a, b = s, s + n
        if b - a > best[1] - best[0]:
            best = (a, b)
    return best


@dataclass(slots=True)
class DecontaminateResult(CurateResult):
    """What `decontaminate` found: its figures go into the summary and OUT.meta.json. `eval` holds, per eval
    file, what EvalIndex.files counts of it (items, rejected, found, ...) with the rate found and the training
    rows that hold one of its items (`train_rows`)."""

    action: str = "drop"
    contaminated_rows: int = 0
    eval: dict[str, dict[str, Any]] = field(default_factory=dict)


def decontaminate(inputs: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str] | None, *,
                  against: Sequence[str | os.PathLike[str]], ngram: int | None = None,
                  threshold: float = DEFAULT_THRESHOLD, min_span: int = DEFAULT_MIN_SPAN,
                  fields: Sequence[str] | None = None, action: Literal["drop", "report"] = "drop",
                  against_preset: str | None = None, against_map: str | None = None, common: int = COMMON,
                  progress: Progress | None = None) -> DecontaminateResult:
    """Records JSONL → OUT without rows that hold an eval item; the dropped rows go to OUT.rejects.jsonl
    with the eval file, item and matched span. `report` writes no data and returns the rates."""
    started = time.perf_counter()
    if not against:
        raise OptionError("decontaminate needs one or more eval files", option="against")
    if not 0 < threshold <= 1:
        raise OptionError("is not in (0, 1]", option="threshold", value=threshold)
    if ngram is not None and ngram < 3:
        raise OptionError("is too short to mean a copy", option="ngram", value=ngram, hint="use 3 or more, or leave it out")
    if action == "drop" and output is None:
        raise OptionError("drop needs an output", option="action", value=action, hint="give output, or count only with action report")
    index = read_eval(against, ngram, check_fields(fields) if fields else Side.prompt, against_preset, against_map)
    pruned = index.prune(common)
    out_path = location(output) if output is not None and action == "drop" else None
    listing = matches_path(location(output)) if output is not None and action == "report" else None
    inputs_ = open_inputs(inputs)
    counts = inputs_.counts
    result = DecontaminateResult("decontaminate", counts, out_path, rejects_path(out_path) if out_path else listing,
                                 action=action)
    found: set[tuple[str, Locator]] = set()
    by_file: Counter[str] = Counter()
    ticker = Ticker(progress)
    with atomic_or_null(out_path) as out, atomic_or_null(result.rejects) as rej:
        for value in inputs_.records():
            ticker.tick()
            if isinstance(value, Reject):
                result.write_reject(value, rej)
                continue
            match = matches(record_text(value.record, Side.all), index, threshold, min_span)
            if match is None:
                counts.file(value.locator.file).written += 1
                out.write(dumps_line(record_row(value.record)))
                continue
            item = index.items[match.item]
            found.add((item.file, item.locator))
            by_file[item.file] += 1
            reject = _reject(value, item, match)
            result.add_example(reject)
            rej.write(dumps_line({**reject.as_dict(), "eval": item.locator.as_dict(), "span": match.span,
                                  "containment": round(match.containment, 3)}))
            if action == "report":  # kept in the counts; listed in OUT.matches.jsonl when -o is given
                counts.file(value.locator.file).written += 1
            else:
                counts.drop(reject)
    ticker.close()
    for file, _ in found:
        index.files[file]["found"] += 1
    per_eval = {f: {**c, "rate": round(c["found"] / c["items"], 4) if c["items"] else 0.0,
                    "train_rows": by_file[f]} for f, c in index.files.items()}
    result.contaminated_rows, result.eval = sum(by_file.values()), per_eval
    settings = {"ngram": ngram or "auto (4 Hangul/CJK, 8 otherwise)", "threshold": threshold, "min_span": min_span,
                "common": common, "common_ngrams_left_out": pruned,
                "normalise": "NFKC, casefold, letters and digits only"}
    extra = {**result.figures(), "decontaminate": settings, "against": [file_digest(location(f)) for f in index.files]}
    result.meta = build_meta("decontaminate", inputs_.paths, counts, out_path, result.rejects, extra, started)
    if output is not None:
        write_json(meta_path(location(output)), result.meta)
    return result


def matches_path(output: Path) -> Path:
    """Where `--action report -o OUT` lists the rows it would drop: OUT.matches.jsonl."""
    return sidecar_path(output, ".matches.jsonl")


def _reject(value: Mapped, item: EvalItem, match: Match) -> Reject:
    return Reject(Stage.filter, "contaminated", f"covers {match.containment:.0%} of eval item {item.locator} "
                  f"(longest shared span {len(match.span)} characters: {match.span[:60]!r})", value.locator,
                  raw=record_row(value.record))

