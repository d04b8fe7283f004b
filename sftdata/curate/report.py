"""One self-contained HTML page for `sftdata stats --report`: lengths, histograms as inline SVG,
reject/filter/dedup reasons (this run's and those recorded in the inputs' sidecars) and the audit's
findings. No scripts, fonts or images are fetched: it opens offline.

A report is made to be shared, so the text it shows of the rows (the samples token by token, the findings'
examples) has its personal information masked as `sftdata scrub` masks it by default (sftdata.curate.pii's
finder, high-confidence hits, the default placeholders such as [전화번호]); the page says so and how many
values it masked. `show_pii` (stats --show-pii) writes them as they are, and the page says that instead."""
from __future__ import annotations

import html
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..provenance import read_meta
from ..writers import AtomicFile
from .pii import PLACEHOLDERS, Hit, find

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1000px;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.25em .7em;border-bottom:1px solid #eee;text-align:right}
th:first-child,td:first-child{text-align:left}.muted{color:#777}.error{color:#b00020;font-weight:600}
.warning{color:#a15c00;font-weight:600}.info{color:#2a5d9f}.finding{margin:1em 0;padding:.6em .9em;border-left:4px solid #ccc}
.finding.error{border-color:#b00020}.finding.warning{border-color:#e09000}.finding.info{border-color:#2a5d9f}
.finding p{margin:.3em 0;color:#222;font-weight:normal}code{background:#f4f4f4;padding:0 .2em}
.charts{display:flex;flex-wrap:wrap;gap:1em}
.sample{white-space:pre-wrap;background:#fafafa;padding:.5em;font-size:12px;max-height:14em;overflow:auto}
.t-prompt{color:#888}.t-trained{background:#e3f4e3}.t-eos{background:#c2185b;color:#fff}.t-bos{color:#0277bd}
.t-gap{color:#b00020;font-style:italic}.pii{background:#fff4e5;padding:.3em .6em}
"""


class Masker:
    """Masks what `sftdata scrub` masks by default in the text a report shows, counting each placeholder."""

    def __init__(self) -> None:
        self.masked: Counter[str] = Counter()

    def _hits(self, text: str) -> list[Hit]:
        hits = [h for h in find(text) if h.confidence == "high"]  # scrub's default: --min-confidence high
        self.masked.update(PLACEHOLDERS[h.type] for h in hits)
        return hits

    def text(self, text: str) -> str:
        out, last = [], 0
        for hit in self._hits(text):
            out += [text[last:hit.start], PLACEHOLDERS[hit.type]]
            last = hit.end
        return "".join(out) + text[last:]

    def tokens(self, tokens: Sequence[Sequence[str]]) -> list[tuple[str, str]]:
        """A sample token by token, masked over the joined text: a number split across tokens is found, and its
        placeholder stands in the token where it starts (the others keep only what lies outside it)."""
        joined = "".join(text for text, _ in tokens)
        hits, at, out = self._hits(joined), 0, []
        for text, kind in tokens:
            start, end = at, at + len(text)
            at, cursor, pieces = end, start, []
            for hit in hits:
                if hit.end <= cursor or hit.start >= end:
                    continue
                pieces.append(joined[cursor:max(cursor, hit.start)])
                if hit.start >= start:
                    pieces.append(PLACEHOLDERS[hit.type])
                cursor = min(hit.end, end)
            out.append(("".join(pieces) + joined[cursor:end], kind))
        return out

    def finding(self, finding: dict[str, Any]) -> dict[str, Any]:
        return {**finding, "examples": [self.text(str(e)) for e in finding.get("examples") or []],
                "samples": [self.tokens(s) for s in finding.get("samples") or []]}

    def note(self) -> str:
        found = ", ".join(f"{p} ×{n:,}" for p, n in self.masked.most_common())
        return ("<p class='pii'>Personal information in the samples and examples below is masked as <code>sftdata "
                f"scrub</code> masks it by default ({html.escape(found) if found else 'none in what this page shows'}); "
                "<code>--show-pii</code> shows it.</p>")


_SHOWN = ("<p class='pii error'>Personal information is shown as it is in the data (<code>--show-pii</code>): do "
          "not share this file.</p>")


def svg_histogram(title: str, hist: dict[str, list[int]], limit: int | None = None,
                  width: int = 460, height: int = 200) -> str:
    """A bar chart of equal-width bins as inline SVG, with the limit drawn as a dashed red line."""
    edges, counts = hist.get("edges") or [], hist.get("counts") or []
    if not counts:
        return f"<p class='muted'>{html.escape(title)}: no samples</p>"
    left, bottom, top, right = 48, 36, 24, 12
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(counts) or 1
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img' "
             f"aria-label='{html.escape(title)}'>",
             f"<text x='{left}' y='16' font-size='13' font-weight='600'>{html.escape(title)}</text>"]
    overflow = int(hist.get("overflow") or 0)
    bars = len(counts) + (1 if overflow else 0)
    peak = max(peak, overflow)
    bar_w = plot_w / bars
    if overflow:  # the samples past the last edge (the axis stops at the 99th percentile or the limit)
        h = plot_h * overflow / peak
        x = left + len(counts) * bar_w
        parts.append(f"<rect x='{x:.1f}' y='{top + plot_h - h:.1f}' width='{max(bar_w - 1, 1):.1f}' height='{h:.1f}' "
                     f"fill='#b00020'><title>≥ {edges[-1]}: {overflow}</title></rect>"
                     f"<text x='{x + bar_w / 2:.1f}' y='{top + plot_h + 26}' font-size='10' text-anchor='middle' "
                     f"fill='#b00020'>≥{edges[-1]}</text>")
    span = (edges[-1] - edges[0] or 1) * bars / len(counts)
    for i, count in enumerate(counts):
        h = plot_h * count / peak
        x, y = left + i * bar_w, top + plot_h - h
        parts.append(f"<rect x='{x:.1f}' y='{y:.1f}' width='{max(bar_w - 1, 1):.1f}' height='{h:.1f}' fill='#4a7bb7'>"
                     f"<title>{edges[i]}–{edges[i + 1]}: {count}</title></rect>")
    axis_y = top + plot_h
    parts.append(f"<line x1='{left}' y1='{axis_y}' x2='{left + plot_w}' y2='{axis_y}' stroke='#999'/>")
    for i in range(0, len(edges), max(1, len(edges) // 6)):
        x = left + plot_w * (edges[i] - edges[0]) / span
        parts.append(f"<text x='{x:.1f}' y='{axis_y + 14}' font-size='10' text-anchor='middle'>{edges[i]}</text>")
    parts.append(f"<text x='{left - 6}' y='{top + 8}' font-size='10' text-anchor='end'>{peak}</text>")
    parts.append(f"<text x='{left - 6}' y='{axis_y}' font-size='10' text-anchor='end'>0</text>")
    if limit is not None and edges[0] <= limit <= edges[-1]:
        x = left + plot_w * (limit - edges[0]) / span
        parts.append(f"<line x1='{x:.1f}' y1='{top}' x2='{x:.1f}' y2='{axis_y}' stroke='#b00020' "
                     f"stroke-dasharray='4 3'/><text x='{x + 3:.1f}' y='{top + 10}' font-size='10' "
                     f"fill='#b00020'>max_seq_length {limit}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    return "–" if value is None else str(value)


def _reasons(summary: dict[str, Any], sources: Sequence[Path]) -> str:
    rows = [("this run", reason, n) for reason, n in summary.get("by_reason", {}).items()]
    for source in sources:
        meta = read_meta(source)
        if meta:
            for reason, n in meta.get("counts", {}).get("by_reason", {}).items():
                rows.append((f"{meta.get('command', '?')} → {source.name}", reason, n))
    if not rows:
        return "<p class='muted'>No row was rejected, filtered or deduplicated (here or in the inputs' sidecars).</p>"
    return _table(("step", "reason", "rows"), rows)


def _sample(tokens: Sequence[Sequence[str]]) -> str:
    """A sample as the trainer sees it: prompt tokens grey, trained green, the stop token magenta."""
    spans = "".join(f"<span class='t-{html.escape(kind)}'>{html.escape(text)}</span>" for text, kind in tokens)
    return f"<pre class='sample'>{spans}</pre>"


def _findings(findings: Sequence[dict[str, Any]]) -> str:
    if not findings:
        return "<p>No findings.</p>"
    out = []
    for f in findings:
        examples = ", ".join(html.escape(e) for e in f["examples"])
        out.append(f"<div class='finding {f['severity']}'><span class='{f['severity']}'>{f['severity'].upper()}</span> "
                   f"<b>{html.escape(f['title'])}</b> <span class='muted'>({html.escape(f['code'])}, "
                   f"{f['count']:,})</span><p><b>What breaks:</b> {html.escape(f['breaks'])}</p>"
                   f"<p><b>Fix:</b> {html.escape(f['fix'])}</p>"
                   + (f"<p class='muted'>e.g. {examples}</p>" if examples else "")
                   + "".join(_sample(s) for s in f.get("samples") or []) + "</div>")
    return "".join(out)


def render_report(summary: dict[str, Any], findings: Sequence[dict[str, Any]], sources: Sequence[Path], *,
                  show_pii: bool = False) -> str:
    """The page; the rows' text it shows masked as the module docstring says unless `show_pii`."""
    masker = None if show_pii else Masker()
    if masker is not None:
        findings = [masker.finding(f) for f in findings]
    shown = _findings(findings)
    stats = summary.get("stats", {})
    limit = (stats.get("max_seq_length") or {}).get("limit")
    lengths = stats.get("lengths", {})
    counts = [(k, summary.get(k, 0)) for k in ("read", "written", "rejected", "filtered", "deduplicated")]
    length_rows = [(name, *(v.get(k) for k in ("min", "p50", "p90", "p99", "max", "mean")))
                   for name, v in lengths.items()]
    charts = "".join(svg_histogram(name.replace("_", " "), hist, limit if name == "total_tokens" else None)
                     for name, hist in stats.get("histograms", {}).items())
    cut = stats.get("max_seq_length")
    cut_html = _table(("max_seq_length", "over", "EOS cut", "completion cut", "nothing trained"),
                      [(cut["limit"], cut["over"], cut["eos_lost"], cut["completion_lost"], cut["nothing_trained"])]
                      ) if cut else "<p class='muted'>No --max-seq-length given.</p>"
    templates = ", ".join(f"{t['name']} (sha256 {t['sha256'][:12]}…, EOS {t['eos']})" for t in summary.get("template") or [])
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>sftdata report</title>"
            f"<style>{_CSS}</style></head><body><h1>sftdata report</h1>"
            f"<p class='muted'>{html.escape(time.strftime('%Y-%m-%d %H:%M:%S'))} · inputs: "
            f"{html.escape(', '.join(str(s) for s in sources))}<br>tokenizer: {html.escape(str(summary.get('tokenizer')))}"
            f" · template: {html.escape(templates)}</p>{_SHOWN if masker is None else masker.note()}"
            f"<h2>Counts</h2>{_table(('', 'rows'), counts)}"
            f"<h2>Lengths</h2>{_table(('', 'min', 'p50', 'p90', 'p99', 'max', 'mean'), length_rows)}"
            f"<div class='charts'>{charts}</div><h2>Truncation</h2>{cut_html}"
            f"<h2>Rejected, filtered and deduplicated rows</h2>{_reasons(summary, sources)}"
            f"<h2>Audit findings</h2>{shown}</body></html>\n")


def write_report(path: Path, summary: dict[str, Any], findings: Sequence[dict[str, Any]],
                 sources: Sequence[Path], *, show_pii: bool = False) -> None:
    with AtomicFile(path) as handle:
        handle.write(render_report(summary, findings, sources, show_pii=show_pii).encode("utf-8"))
