"""Dataset cards: what the data is (counts per split, lengths, languages) and how it was made
(the pipeline steps recorded in the `.meta.json` sidecars, followed back through `parents`).

The card is a README.md with YAML front matter in the Hugging Face form. Writing it again updates
it: sftdata's keys and its own block (between the sftdata markers) are replaced, everything else a
person wrote is kept. Languages are guessed from Unicode script shares (Hangul → ko, Kana → ja,
Han → zh, Latin → en, ...; a non-Latin script with a fifth of the weight wins over Latin, a CJK
character weighing as 3-4 Latin letters); lengths are counted in characters.
"""
from __future__ import annotations

import re
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from .. import __version__
from .lineage import (
    origin_sources,
    pipeline_chain,
    relative_names,
    step_key,
    step_summary,
    templates_used,
    unique_sources,
)
from .lineage import pipeline_steps as pipeline_steps  # sftdata.formats.targets reads it from here

BEGIN, END = "<!-- sftdata:card:begin -->", "<!-- sftdata:card:end -->"
SCRIPTS = (("Hangul", "ko", "\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3"), ("Kana", "ja", "\u3040-\u30ff"),
           ("Han", "zh", "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"), ("Latin", "en", "A-Za-z\u00c0-\u024f"),
           ("Cyrillic", "ru", "\u0400-\u04ff"), ("Greek", "el", "\u0370-\u03ff"), ("Arabic", "ar", "\u0600-\u06ff"),
           ("Hebrew", "he", "\u0590-\u05ff"), ("Devanagari", "hi", "\u0900-\u097f"), ("Thai", "th", "\u0e00-\u0e7f"))
_PATTERNS = [(name, code, re.compile(f"[{chars}]")) for name, code, chars in SCRIPTS]
_WEIGHT = {"Han": 4, "Kana": 4, "Hangul": 3}  # letters per character, roughly, against Latin letters
_SAMPLE = 4000  # characters per record looked at for its script


def language_of(text: str) -> tuple[str | None, Counter[str]]:
    """The language a text's dominant script suggests, and its script counts."""
    sample = text[:_SAMPLE]
    counts = Counter({name: len(pattern.findall(sample)) for name, _, pattern in _PATTERNS})
    counts = +counts
    if not counts:
        return None, counts
    script = counts.most_common(1)[0][0]
    others = [(n, c * _WEIGHT.get(n, 1)) for n, c in counts.most_common() if n != "Latin"]
    others.sort(key=lambda pair: -pair[1])
    if script == "Latin" and others and others[0][1] >= 0.2 * (counts["Latin"] + others[0][1]):
        script = others[0][0]  # Latin letters ride along (code, names, a template's English words)
    if script == "Han" and counts["Kana"]:
        script = "Kana"  # Japanese mixes kanji with kana; Chinese has none
    return dict((n, c) for n, c, _ in _PATTERNS)[script], counts


def shape_of(row: dict[str, Any]) -> str:
    """A record's kind, or the style of a rendered row."""
    if "messages" in row:
        return "chat"
    if "prompt" in row and "completion" in row:
        return "prompt-completion"
    return "text" if "text" in row else "qa" if "question" in row else "instruction"


def row_parts(row: dict[str, Any]) -> tuple[str, str, int]:
    """(prompt text, response text, turns) of a row in any shape sftdata reads or writes."""
    if "messages" in row and isinstance(row["messages"], list):
        prompt, response = [], []
        for message in row["messages"]:
            if isinstance(message, dict) and isinstance(message.get("content"), str):
                (response if message.get("role") == "assistant" else prompt).append(message["content"])
        return "\n".join(prompt), "\n".join(response), len(row["messages"])
    if "prompt" in row and "completion" in row:
        if isinstance(row["prompt"], list):
            return row_parts({"messages": row["prompt"] + (row["completion"] or [])})
        return str(row["prompt"] or ""), str(row["completion"] or ""), 2
    if "text" in row:
        return "", str(row["text"] or ""), 1
    if "question" in row:
        return "\n".join(str(row.get(k) or "") for k in ("context", "question")).strip(), str(row.get("answer") or ""), 2
    prompt = "\n".join(str(row.get(k) or "") for k in ("system", "instruction", "input")).strip()
    return prompt, str(row.get("output") or ""), 2


@dataclass
class Stats:
    """Running statistics over rows: counts, character lengths, turns, languages."""

    rows: int = 0
    prompt: array = field(default_factory=lambda: array("q"))
    response: array = field(default_factory=lambda: array("q"))
    turns: array = field(default_factory=lambda: array("q"))
    languages: Counter[str] = field(default_factory=Counter)
    scripts: Counter[str] = field(default_factory=Counter)
    shapes: Counter[str] = field(default_factory=Counter)

    def add(self, row: Any) -> None:
        if not isinstance(row, dict):
            return
        prompt, response, turns = row_parts(row)
        self.rows += 1
        self.shapes[shape_of(row)] += 1
        self.prompt.append(len(prompt))
        self.response.append(len(response))
        self.turns.append(turns)
        language, scripts = language_of(prompt + "\n" + response)
        self.languages[language or "unknown"] += 1
        self.scripts.update(scripts)

    def lengths(self) -> dict[str, dict[str, float]]:
        total = array("q", (p + r for p, r in zip(self.prompt, self.response)))
        return {name: _describe(values) for name, values in
                (("prompt", self.prompt), ("response", self.response), ("total", total), ("turns", self.turns))}

    def language_codes(self, share: float = 0.01) -> list[str]:
        """Languages of at least `share` of the rows, most common first."""
        return [code for code, n in self.languages.most_common() if code != "unknown" and n >= share * self.rows]


def _describe(values: array) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def pick(q: float) -> int:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"min": ordered[0], "mean": round(sum(ordered) / len(ordered), 1), "p50": pick(0.5), "p90": pick(0.9),
            "p99": pick(0.99), "max": ordered[-1]}


def size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                         (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")):
        if n < limit:
            return label
    return "100M<n<1B"


# ---- the card ------------------------------------------------------------------------------------

@dataclass
class CardData:
    title: str
    splits: dict[str, Stats]
    steps: list[dict[str, Any]]
    license: str | None = None
    extra_yaml: dict[str, Any] = field(default_factory=dict)  # configs, dataset_info (hf export)
    notes: list[str] = field(default_factory=list)
    sources: list[dict[str, Any]] | None = None  # the chain's raw files (pipeline_chain); None: from the steps


def stats_of(rows: Iterable[Any]) -> Stats:
    stats = Stats()
    for row in rows:
        stats.add(row)
    return stats


def front_matter(data: CardData) -> dict[str, Any]:
    total = Stats()
    for stats in data.splits.values():
        total.rows += stats.rows
        total.languages.update(stats.languages)
    out: dict[str, Any] = {"language": total.language_codes() or ["unknown"]}
    out["license"] = data.license or "unknown"
    out.update({"task_categories": ["text-generation"], "size_categories": [size_category(total.rows)],
                "tags": ["sft", "sftdata"]})
    out.update(data.extra_yaml)
    return out


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def body(data: CardData) -> str:
    parts = [BEGIN, f"# {data.title}", "",
             f"Supervised fine-tuning data, described by sftdata {__version__} from the data and the `.meta.json` "
             "sidecars of the steps that made it."]
    shapes: Counter[str] = Counter()
    for stats in data.splits.values():
        shapes.update(stats.shapes)
    if shapes:
        parts.append("Rows: " + ", ".join(f"{k} ({n:,})" for k, n in shapes.most_common()) + ".")
    parts += ["", "## Splits", "", _table(["split", "examples"], [[s, f"{st.rows:,}"] for s, st in data.splits.items()])]
    parts += ["", "## Lengths (characters)", ""]
    rows = []
    for split, stats in data.splits.items():
        for name, d in stats.lengths().items():
            if d:
                rows.append([split, name, *(d[k] for k in ("min", "mean", "p50", "p90", "p99", "max"))])
    parts.append(_table(["split", "part", "min", "mean", "median", "p90", "p99", "max"], rows))
    languages: Counter[str] = Counter()
    scripts: Counter[str] = Counter()
    for stats in data.splits.values():
        languages.update(stats.languages)
        scripts.update(stats.scripts)
    total = sum(languages.values()) or 1
    parts += ["", "## Languages", "", "Guessed per example from its dominant Unicode script (Latin is reported as "
              "`en`, Han without kana as `zh`).", "",
              _table(["language", "examples", "share"], [[c, f"{n:,}", f"{n / total:.1%}"] for c, n in languages.most_common()])]
    templates = templates_used(data.steps)
    parts += ["", "## Template and EOS", ""]
    if templates:
        parts += [f"- `{t.get('name')}` (sha256 `{str(t.get('sha256', ''))[:16]}`), EOS `{t.get('eos')}`"
                  + (f", template arguments `{orjson.dumps(t['args']).decode()}`" if t.get("args") else "")
                  for t in templates]
    else:
        parts.append("Records, not rendered text: no template or EOS applied yet.")
    parts += ["", "## How it was made", ""]
    if not data.steps:
        parts.append("No `.meta.json` sidecar was found beside the data.")
    for number, meta in enumerate(data.steps, 1):
        step = step_summary(meta)
        counts = ", ".join(f"{k} {v:,}" for k, v in step["counts"].items() if v or k in ("read", "written"))
        params = "; ".join(f"{k}: `{orjson.dumps(v).decode()}`" for k, v in step["params"].items())
        line = f"{number}. **{step['command']}** ({step['created']}) from {', '.join(step['sources']) or '—'}: {counts}"
        parts.append(line + (f". {params}" if params else ""))
        review = meta.get("review") if meta.get("command") == "review-apply" else None
        if isinstance(review, dict):
            who = ", ".join(review.get("reviewers") or []) or "unnamed"
            tally = ", ".join(f"{k} {int(review.get(k) or 0):,}" for k in ("accepted", "rejected", "edited", "restored"))
            parts.append(f"   - reviewed by a person in `{review.get('file')}` ({who}): {tally}")
        if step["by_reason"]:
            parts.append("   - rejects, filters and duplicates by reason: "
                         + ", ".join(f"{r} {n:,}" for r, n in step["by_reason"].items()))
    parts += production_sections(data.steps)
    sources = unique_sources(data.sources if data.sources is not None else origin_sources(data.steps))
    if sources:
        names = relative_names(sources)
        parts += ["", "## Sources", "", "The files the data was made from, through every step and input above.", "",
                  _table(["file", "bytes", "sha256"],
                                                [[name, f"{s.get('bytes', 0):,}", f"`{s.get('sha256', '')}`"]
                                                 for name, s in zip(names, sources)])]
    parts += [""] + [f"> {note}" for note in data.notes] if data.notes else []
    parts.append(END)
    return "\n".join(parts) + "\n"


def production_sections(steps: list[dict[str, Any]]) -> list[str]:
    """What scrub, decontaminate and mix steps did: hits by type, contamination per eval set, the mix's shares."""
    parts: list[str] = []
    for meta in steps:
        command = meta.get("command")
        if command == "scrub" and isinstance(meta.get("pii"), dict):
            pii, how = meta["pii"], meta.get("scrub") or {}
            parts += ["", "## Personal information", "",
                      f"`sftdata scrub` ({how.get('action', '?')}): {pii.get('rows_with_pii', 0):,} rows held personal "
                      "information; hits by type (values are never recorded):", "",
                      _table(["type", "hits"], [[t, f"{n:,}"] for t, n in (pii.get("hits") or {}).items()] or [["—", 0]])]
        elif command == "decontaminate" and isinstance(meta.get("eval"), dict):
            parts += ["", "## Decontamination", "", _table(
                ["eval set", "items", "found in training data", "rate", "training rows dropped"],
                [[Path(f).name, f"{c.get('items', 0):,}", f"{c.get('found', 0):,}", f"{c.get('rate', 0):.2%}",
                  f"{c.get('train_rows', 0):,}"] for f, c in meta["eval"].items()])]
        elif command == "mix" and isinstance(meta.get("mix"), dict):
            mix = meta["mix"]
            rows = mix.get("sources") or []
            tokens = all("trained_tokens" in r for r in rows)
            header = ["source", "weight", "rows", "rows drawn"] + (
                ["trained tokens", "share before", "share after"] if tokens else ["share before", "share after"])
            parts += ["", "## Mix", "", f"By {mix.get('by')}, seed {mix.get('seed')}, at most "
                      f"{mix.get('max_repeat')} passes over a source.", "", _table(header, [
                          [Path(str(r.get("source"))).name, f"{r.get('weight', 0):.0%}", f"{r.get('rows', 0):,}",
                           f"{r.get('rows_out', 0):,}"] + (
                              [f"{r['trained_tokens_out']:,}", f"{r['token_share']:.1%}", f"{r['token_share_out']:.1%}"]
                              if tokens else [f"{r.get('row_share', 0):.1%}", f"{r.get('row_share_out', 0):.1%}"])
                          for r in rows])]
    return parts


def render_card(data: CardData, existing: str | None = None) -> str:
    """The README text: new, or `existing` with sftdata's keys and block replaced and the rest kept."""
    matter, rest = split_front_matter(existing or "")
    new = front_matter(data)
    if matter.get("license") and not data.license:
        new["license"] = matter["license"]
    merged = {**matter, **new}
    block = body(data)
    if BEGIN in rest and END in rest:
        head, _, tail = rest.partition(BEGIN)
        _, _, tail = tail.partition(END)
        text = head + block.rstrip("\n") + tail
    else:
        text = (rest.rstrip("\n") + "\n\n" + block) if rest.strip() else block
    dumped = yaml.safe_dump(merged, sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{dumped}---\n\n{text.lstrip(chr(10))}"


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    if text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        if end != -1:
            try:
                matter = yaml.safe_load(text[4:end]) or {}
            except yaml.YAMLError:
                matter = None
            if isinstance(matter, dict):
                return matter, text[end + 5:]
    return {}, text


@dataclass
class CardResult:
    output: Path
    splits: dict[str, int]
    languages: list[str]
    steps: int

    def summary(self) -> dict[str, Any]:
        return {"command": "card", "output": str(self.output), "splits": self.splits, "languages": self.languages,
                "steps": self.steps}


def make_card(path: str | Path, output: str | Path | None = None, *, license: str | None = None,
              title: str | None = None) -> CardResult:
    """Write or update the dataset card of a data file, a split folder or an exported hf folder."""
    from ..errors import InputError
    from ..writers import AtomicFile
    from .hfdataset import read_rows, split_files

    path = Path(path)
    if not path.exists():
        raise InputError("no such file or directory", file=str(path))
    files = split_files(path)
    if not files:
        raise InputError("no split files (.jsonl, or data/*.parquet) in this folder", file=str(path))
    splits = {split: stats_of(read_rows(paths)) for split, paths in files.items()}
    steps: list[dict[str, Any]] = []
    sources: list[dict[str, Any]] = []
    keys: set[str] = set()
    for data in [path] + [p for paths in files.values() for p in paths]:
        chain, origins = pipeline_chain(data)
        sources += origins
        for meta in chain:
            if step_key(meta) not in keys:
                keys.add(step_key(meta))
                steps.append(meta)
    out = Path(output) if output else (path if path.is_dir() else path.parent) / "README.md"
    existing = out.read_text(encoding="utf-8") if out.is_file() else None
    matter, _ = split_front_matter(existing or "")
    data = CardData(title or (path.stem if path.is_file() else path.name), splits, steps, license=license,
                    extra_yaml={k: matter[k] for k in ("configs", "dataset_info") if k in matter},
                    sources=unique_sources(sources))
    with AtomicFile(out) as handle:
        handle.write(render_card(data, existing).encode("utf-8"))
    return CardResult(out, {s: st.rows for s, st in splits.items()}, front_matter(data)["language"], len(steps))
