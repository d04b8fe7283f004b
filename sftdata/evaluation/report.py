"""The offline HTML page of `sftdata eval --report`: the figures side by side, the judge's rates, then the
answers with their references, worst first by each metric. One file, no scripts, nothing fetched."""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from ..writers import AtomicFile

_CSS = """body{font-family:system-ui,'Noto Sans KR',sans-serif;margin:2em;max-width:72em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.3em .6em;vertical-align:top}
th{background:#f3f3f3;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
pre{white-space:pre-wrap;margin:0;font-family:inherit}.bad{color:#a00}.good{color:#070}small{color:#666}"""
_FIGURES = (("loss", "loss on the trained tokens (lower is better)"), ("perplexity", "perplexity"),
            ("stop_rate", "stopped on the stop token"), ("chrf", "chrF (0-100)"), ("rouge_l", "character ROUGE-L (0-100)"),
            ("exact_match", "exact match"), ("lang_share", "letters in the expected script"),
            ("repetition", "repeated 10-grams (lower is better)"), ("length_ratio", "length / reference length"),
            ("answers_per_s", "answers per second"))
_WORST = (("chrf", "lowest chrF", False), ("stopped", "not stopped (cut at max-new-tokens)", False),
          ("repetition", "most repetitive", True), ("lang_share", "fewest letters in the expected script", False))


def _e(value: Any) -> str:
    return html.escape(str(value))


def write_report(result: Any, path: Path, per_section: int = 5) -> Path:
    summary = result.summary()
    tuned, base = summary["tuned"], summary.get("base") or {}
    parts = [f"<!doctype html><meta charset='utf-8'><title>sftdata eval</title><style>{_CSS}</style>",
             f"<h1>sftdata eval</h1><p>{_e(summary['target'])} on {summary['samples']} records "
             f"({summary['rejected']} rejected); answers in <code>{_e(summary['output'])}</code></p>",
             "<table><tr><th>figure</th><th>tuned</th><th>base</th></tr>"]
    for key, label in _FIGURES:
        if key in tuned or key in base:
            parts.append(f"<tr><td>{_e(label)}</td><td class=n>{_e(tuned.get(key, '—'))}</td>"
                         f"<td class=n>{_e(base.get(key, '—'))}</td></tr>")
    parts.append("</table>")
    if summary.get("judge"):
        j = summary["judge"]
        parts.append(f"<h2>Judge</h2><p>{j['judged']} of {j['pairs']} pairs judged, each in both orders "
                     f"({j['consistent']} with one verdict in both). Win {j['win_rate']:.1%} "
                     f"<small>[{j['win_ci95'][0]:.1%}, {j['win_ci95'][1]:.1%}]</small>, tie {j['tie_rate']:.1%}, "
                     f"loss {j['loss_rate']:.1%} <small>[{j['loss_ci95'][0]:.1%}, {j['loss_ci95'][1]:.1%}]</small>.</p>")
    if summary["failed"]:
        parts.append("<p class=bad>Gates failed: " + _e("; ".join(summary["failed"])) + "</p>")
    for key, title, descending in _WORST:
        rows = [r for r in result.rows if r["tuned"].get(key) is not None]
        rows.sort(key=lambda r: float(r["tuned"][key]), reverse=descending)
        shown = rows[:per_section] if key != "stopped" else [r for r in rows if not r["tuned"]["stopped"]][:per_section]
        if shown:
            parts.append(f"<h2>Worst: {_e(title)}</h2>" + _answers(shown))
    parts.append("<h2>All answers</h2>" + _answers(result.rows))
    with AtomicFile(path) as out:
        out.write("\n".join(parts).encode("utf-8"))
    return path


def _answers(rows: list[dict[str, Any]]) -> str:
    has_base = any(r.get("base") for r in rows)
    head = "<tr><th>source</th><th>question</th><th>reference</th><th>tuned</th>" + ("<th>base</th>" if has_base else "")
    out = ["<table>" + head + "</tr>"]
    for row in rows:
        src = row["source"]
        where = f"{Path(src['file']).name}:{src.get('line', src.get('index', ''))}"
        cells = [where, f"<pre>{_e(row['question'])}</pre>", f"<pre>{_e(row['reference'])}</pre>", _answer(row["tuned"])]
        if has_base:
            cells.append(_answer(row["base"]) if row.get("base") else "—")
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return "\n".join(out) + "</table>"


def _answer(a: dict[str, Any]) -> str:
    flag = "" if a["stopped"] else " <span class=bad>(cut)</span>"
    return (f"<pre>{_e(a['text'])}</pre><small>chrF {a['chrf']}, ROUGE-L {a['rouge_l']}, "
            f"rep {a['repetition']}{flag}</small>")
