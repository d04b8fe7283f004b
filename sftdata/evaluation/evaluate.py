"""`sftdata eval`: did the fine-tune help? A tuned model and its base on held-out records.

For each eval record (up to `n`), rendered with the run's own template and arguments as `train` rendered
its data:

- **loss** (a run directory, in-process): the mean cross-entropy over the trained tokens (the answer and
  its stop token) and its perplexity, for the tuned model and, with `base`, for the base (the same weights
  with the adapter switched off); `loss_gain` is base minus tuned.
- **generation**: a greedy answer to the record's prompt (everything before its last trained span) from
  the tuned model and, with `base`, the base: in-process and batched for a run directory, through a
  llama.cpp server for a GGUF, or through any OpenAI-compatible server with `base_url`. Each answer is
  scored (sftdata.evaluation.metrics): stopped on the stop token or cut at `max_new_tokens`, length
  against the reference, repetition, the share of letters in `lang`'s script, chrF, character ROUGE-L
  and exact match.
- **judge** (optional, sftdata.evaluation.judge): tuned against base (or against the reference), each
  pair in both orders, by any OpenAI-compatible model; win / tie / loss rates with 95% intervals.

OUT (JSONL) holds one row per record with its file and line, the prompt, the reference, each answer and
its scores, and the judge's verdicts; OUT.meta.json names the run, base model, data (with hashes),
template and arguments and holds the results; `report` writes an offline HTML page. `fail_under` items
(METRIC=VALUE) are gates: `EvalResult.failed()` lists those the tuned model did not reach.
"""
from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..curate.samples import open_inputs
from ..curate.textquality import check_lang, script_share
from ..errors import InputError, OptionError, option
from ..ingest.mapping import Mapped
from ..items import Reject, Stage
from ..provenance import build_meta
from ..schemas.records import ChatRecord, InstructionRecord, Record
from ..writers import AtomicFile, dumps_line, meta_path, rejects_path, sidecar_path, write_json
from .answers import Generated, InProcess, Prompted, Served
from .judge import Judge, JudgeOptions, Pair, Verdict, summarise
from .metrics import chrf, exact_match, repetition, rouge_l

GATES = ("chrf", "rouge_l", "exact_match", "stop_rate", "lang_share", "loss_gain", "win_rate")


@dataclass(slots=True)
class Scored:
    text: str
    stopped: bool
    tokens: int
    seconds: float
    chrf: float
    rouge_l: float
    exact_match: bool
    repetition: float
    length_ratio: float
    lang_share: float | None = None


@dataclass(slots=True)
class Item:
    mapped: Mapped
    question: str
    reference: str
    prompted: Prompted


@dataclass(slots=True)
class EvalResult:
    target: str
    output: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    losses: dict[str, dict[str, float]] = field(default_factory=dict)
    judge: dict[str, Any] | None = None
    rejected: int = 0
    gates: list[tuple[str, float]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    report: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def metrics(self, which: str) -> dict[str, float]:
        answers = [row[which] for row in self.rows if row.get(which)]
        if not answers:
            return {}
        out = {name: _mean(float(a[name]) for a in answers)
               for name in ("chrf", "rouge_l", "exact_match", "repetition", "length_ratio")}
        out["stop_rate"] = _mean(float(a["stopped"]) for a in answers)
        shares = [a["lang_share"] for a in answers if a.get("lang_share") is not None]
        if shares:
            out["lang_share"] = _mean(shares)
        out["answers_per_s"] = round(len(answers) / self.seconds[which], 3) if self.seconds.get(which) else 0.0
        out.update(self.losses.get(which, {}))
        return out

    def tuned_figures(self) -> dict[str, float]:
        tuned = self.metrics("tuned")
        if "loss" in tuned and "loss" in self.losses.get("base", {}):
            tuned["loss_gain"] = round(self.losses["base"]["loss"] - tuned["loss"], 4)
        if self.judge:
            tuned["win_rate"] = self.judge["win_rate"]
        return tuned

    def failed(self) -> list[str]:
        tuned = self.tuned_figures()
        return [f"{name} {'n/a' if tuned.get(name) is None else tuned[name]} < {least:g}"
                for name, least in self.gates if tuned.get(name) is None or tuned[name] < least]

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"command": "eval", "target": self.target, "output": str(self.output),
                               "samples": len(self.rows), "rejected": self.rejected, "tuned": self.tuned_figures()}
        if self.metrics("base"):
            out["base"] = self.metrics("base")
        if self.judge:
            out["judge"] = self.judge
        if self.report:
            out["report"] = str(self.report)
        out["failed"] = self.failed()
        return out


def _mean(values: Any) -> float:
    items = list(values)
    return round(sum(items) / len(items), 4) if items else 0.0


def parse_gates(items: Sequence[str]) -> list[tuple[str, float]]:
    gates = []
    for item in items:
        name, sep, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not sep or name not in GATES or number != number:
            raise OptionError("is not METRIC=NUMBER", option="fail_under", value=item, hint=f"METRIC is one of {', '.join(GATES)}")
        gates.append((name, number))
    return gates


def turns_of(record: Record) -> tuple[str, list[dict[str, str]], str] | None:
    """(the question as a person reads it, the prompt turns, the reference answer) of a record."""
    if isinstance(record, ChatRecord):
        last = max((i for i, m in enumerate(record.messages) if m.role.value == "assistant"), default=None)
        if last is None:
            return None
        turns = [{"role": m.role.value, "content": m.content} for m in record.messages[:last]]
        users = [t["content"] for t in turns if t["role"] == "user"]
        return (users[-1] if users else ""), turns, record.messages[last].content
    if isinstance(record, InstructionRecord):
        question = record.instruction + (f"\n\n{record.input}" if record.input else "")
        system = [{"role": "system", "content": record.system}] if record.system else []
        return question, [*system, {"role": "user", "content": question}], record.output
    question = (f"{record.context}\n\n" if record.context else "") + record.question
    return question, [{"role": "user", "content": question}], record.answer


def evaluate(target: str | os.PathLike[str], data: Sequence[str | os.PathLike[str]], *,
             output: str | os.PathLike[str] | None = None, base: bool = False, n: int | None = None,
             max_new_tokens: int = 128, lang: str | None = None, base_url: str | None = None,
             model: str | None = None, api_key_env: str = "OPENAI_API_KEY", base_gguf: str | os.PathLike[str] | None = None,
             concurrency: int = 4, batch_size: int = 8, judge: JudgeOptions | None = None,
             report: str | os.PathLike[str] | None = None, fail_under: Sequence[str] = (),
             llama_cpp: str | os.PathLike[str] | None = None, threads: int | None = None,
             progress: Callable[[str, int], None] | None = None) -> EvalResult:
    """Loss, generation metrics and (optionally) a pairwise judge of a tuned model against its base."""
    started = time.perf_counter()
    gates = parse_gates(fail_under)
    if lang:
        check_lang(lang)
    if n is not None and n < 1:
        raise OptionError("must be at least 1", option="n", value=n)
    path = Path(target)
    kind: Literal["run", "gguf", "server"] = "server" if base_url else ("run" if path.is_dir() else "gguf")
    if kind == "server" and base:
        raise OptionError("compares against the run's own base: give the run directory or GGUF, not "
                          f"{option('base_url')}", option="base", value=True)
    if judge is not None and judge.versus == "base" and not base:  # before any model is loaded
        raise OptionError("the judge compares tuned with base answers", option="judge_versus", value="base",
                          hint=f"add {option('base', True)} (or {option('judge_versus', 'reference')})")
    if kind == "gguf" and path.suffix != ".gguf":
        raise InputError("not a run directory or .gguf file", file=str(target))
    out = Path(output) if output else (path / "eval.jsonl" if kind == "run" else Path("eval.jsonl"))
    result = EvalResult(str(target), out, gates=gates)
    inputs = open_inputs(data)
    with ExitStack() as stack, AtomicFile(rejects_path(out)) as rej:
        models, renderer, info = _open(kind, path, base, base_url, model, api_key_env, base_gguf, concurrency,
                                       batch_size, llama_cpp, threads, stack)
        items = _items(inputs.records(), renderer, n, rej, result)
        if not items:
            raise InputError("no eval record could be used", file=str(rejects_path(out)),
                               hint="eval data must be records with an answer (the kind the run trained on)")
        answers: dict[str, list[Generated]] = {}
        for answerer in models:
            began = time.perf_counter()
            answers[answerer.name] = answerer.answer([i.prompted for i in items], max_new_tokens,
                                                     (lambda k, name=answerer.name: progress(name, k)) if progress else None)
            result.seconds[answerer.name] = time.perf_counter() - began
            if isinstance(answerer, InProcess):
                result.losses[answerer.name] = _loss(answerer, items)
        result.rows = [_row(item, {name: got[i] for name, got in answers.items()}, lang) for i, item in enumerate(items)]
    judged: dict[str, Any] = {}
    if judge is not None:
        verdicts, judged = _judge(judge, result, out)
        result.judge = {**summarise(verdicts), "requests": judged["requests"], "cached": judged["cached"]}
        for row, verdict in zip(result.rows, verdicts):
            row["judge"] = {"first": verdict.first, "second": verdict.second, "outcome": verdict.outcome,
                            "reasons": verdict.reasons, **({"error": verdict.error} if verdict.error else {})}
    with AtomicFile(out) as sink:
        for row in result.rows:
            sink.write(dumps_line(row))
    if report:
        from .report import write_report

        result.report = write_report(result, Path(report))
    extra = {"target": str(target), "kind": kind, "base_model": (info or {}).get("base_model"),
             "template": (info or {}).get("template"), "eos": (info or {}).get("eos"), "max_new_tokens": max_new_tokens,
             "lang": lang, "judge": judged or None,
             "results": {"tuned": result.tuned_figures(), "base": result.metrics("base"), "judge": result.judge}}
    counts = inputs.counts
    result.meta = build_meta("eval", inputs.paths, counts, out, rejects_path(out), extra, started)
    write_json(meta_path(out), result.meta)
    return result


def _open(kind: str, path: Path, base: bool, base_url: str | None, model: str | None, api_key_env: str,
          base_gguf: Any, concurrency: int, batch_size: int, llama_cpp: Any, threads: int | None,
          stack: ExitStack) -> tuple[list[Any], Any, dict[str, Any] | None]:
    """The answerers (tuned first), the renderer of the training template (or None), the run's record."""
    if kind == "server":
        from ..trainers.outputs import INFO, read_info

        key = os.environ.get(api_key_env) or None
        info = read_info(path) if (path / INFO).is_file() else None
        return [Served("tuned", base_url or "", model=model, completion=False, concurrency=concurrency, api_key=key)], \
            None, info
    if kind == "run":
        from ..trainers.infer import load_tuned

        tuned = load_tuned(path)
        models = [InProcess(tuned, adapter=True, batch_size=batch_size)]
        if base:
            models.append(InProcess(tuned, adapter=False, batch_size=batch_size))
        return models, tuned.renderer, tuned.info
    from ..trainers.llamaservers import LlamaServer, check_server_installed
    from ..trainers.serve import _resolve

    check_server_installed()
    work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sftdata-eval-")))
    resolved = _resolve(path, Path(base_gguf) if base_gguf else None, llama_cpp, work)
    if base and resolved.base is None:
        raise InputError("no base model to compare with: the base of this export is not known as a GGUF file",
                           hint="pass --base-gguf BASE.gguf")
    fmt = resolved.fmt
    stop = fmt.eos if fmt is not None else None
    servers = [("tuned", resolved.model, resolved.lora)] + ([("base", resolved.base, None)] if base else [])
    models = []
    for name, gguf, lora in servers:
        server = stack.enter_context(LlamaServer(gguf, work / f"{name}.log", lora=lora, threads=threads))
        models.append(Served(name, server.base_url, stop=stop, completion=fmt is not None, concurrency=concurrency))
    return models, (fmt.renderer if fmt is not None else None), resolved.info


def _items(stream: Any, renderer: Any, n: int | None, rej: AtomicFile, result: EvalResult) -> list[Item]:
    items: list[Item] = []
    for value in stream:
        if n is not None and len(items) >= n:
            break
        if isinstance(value, Reject):
            result.rejected += 1
            rej.write(dumps_line(value.as_dict()))
            continue
        turns = turns_of(value.record)
        if turns is None or not turns[2].strip():
            reject = Reject(Stage.validate, "no_reference", "an eval record needs an answer to compare with",
                            value.locator)
            result.rejected += 1
            rej.write(dumps_line(reject.as_dict()))
            continue
        question, messages, reference = turns
        rendered, prompt_text = None, None
        if renderer is not None:
            done = renderer.render(value.record, value.locator)
            if isinstance(done, Reject):
                result.rejected += 1
                rej.write(dumps_line(done.as_dict()))
                continue
            rendered, prompt_text = done, done.split()[0]
        items.append(Item(value, question, reference, Prompted(rendered, prompt_text, messages)))
    return items


def _loss(answerer: InProcess, items: list[Item]) -> dict[str, float]:
    import math

    total, count = 0.0, 0
    for item in items:
        assert item.prompted.rendered is not None
        nll, tokens = answerer.loss(item.prompted.rendered)
        total, count = total + nll, count + tokens
    mean = total / count if count else float("nan")
    return {"loss": round(mean, 4), "perplexity": round(math.exp(mean), 3) if count else float("nan"),
            "loss_tokens": count}


def _row(item: Item, answers: dict[str, Generated], lang: str | None) -> dict[str, Any]:
    row: dict[str, Any] = {"source": item.mapped.locator.as_dict(), "question": item.question,
                           "reference": item.reference}
    for name, got in answers.items():
        row[name] = asdict(score(got, item.reference, lang))
    return row


def score(got: Generated, reference: str, lang: str | None) -> Scored:
    answer = got.text.strip()
    share = script_share(answer, lang) if lang else None
    return Scored(answer, got.stopped, got.tokens, round(got.seconds, 3), round(chrf(answer, reference), 2),
                  round(rouge_l(answer, reference), 2), exact_match(answer, reference), round(repetition(answer), 4),
                  round(len(answer) / max(len(reference.strip()), 1), 3),
                  None if share is None else round(share, 4))


def _judge(options: JudgeOptions, result: EvalResult, out: Path) -> tuple[list[Verdict], dict[str, Any]]:
    versus = options.versus
    pairs = [Pair(row["question"], row["reference"], row["tuned"]["text"],
                  row["base"]["text"] if versus == "base" else row["reference"]) for row in result.rows]
    judge = Judge(options, sidecar_path(out, ".judge-cache.jsonl"))
    verdicts = judge.judge(pairs)
    return verdicts, {**judge.describe(), "requests": judge.stats.requests, "cached": judge.stats.cached,
                      "retries": judge.stats.retries, "failed": dict(judge.stats.failed)}
