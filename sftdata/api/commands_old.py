"""The notebook API: one function per `sftdata` command, with the command's options as keyword arguments.

`import sftdata` exposes each of these lazily (`sftdata.stats(...)`, `sftdata.dedup(...)`, …); the CLI calls
the same functions, so a flag and its keyword argument cannot drift apart (tests/test_api.py checks it).
Each returns a typed result; progress, where a command reports any, goes to the `progress` callback.
validate and schema live in sftdata.pipeline, with the same rule.

convert, render, filter, pretokenize and dedup also run split by split on an engine (`engine="ray"` or
`"spark"`, sftdata.scale): the inputs are cut into splits of about `split_mib` MiB, `address` names the Ray
cluster or Spark master (none runs one locally), OUTPUT is a folder of part files with one _meta.json,
and `concat` also writes the single files a local run writes (OUTPUT.jsonl and its sidecars).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..items import Progress, RunResult
from ..rendering.plan import TemplateArgs, TrainOn

if TYPE_CHECKING:
    from ..curate.inspection import Shown
    from ..curate.samples import CurateResult
    from ..evaluation.evaluate import EvalResult
    from ..formats.card import CardResult
    from ..formats.exporting import ExportResult
    from ..synthesis import SynthResult
    from ..tokenize.encode import Specials
    from ..trainers.gguf import GgufExport
    from ..trainers.infer import Generation
    from ..trainers.plan import Plan
    from ..trainers.qlora import TrainResult
    from ..trainers.serve import ServeCheck

Files = Sequence[str | os.PathLike[str]]
PathLike = str | os.PathLike[str]
Engine = Literal["local", "ray", "spark"]


def _on_engine(command: Literal["render", "filter", "pretokenize"], inputs: Files, output: PathLike, engine: Engine,
               address: str | None, split_mib: float, concat: bool, options: dict[str, Any]) -> Any:
    from ..scale.commands import run_command

    return run_command(command, inputs, output, engine=engine, address=address, split_mib=split_mib, concat=concat,
                       options=options)


def convert(inputs: Files, output: PathLike, *, preset: str | None = None, mapping: Any = None, to: Any = None,
            encoding: str = "auto", records_path: str | None = None, template: str | None = None,
            tokenizer: str | None = None, eos: str | None = None, style: Any = None, template_args: TemplateArgs = None,
            train_on: TrainOn = "all", split_thinking: bool = False, split_turns: bool = False,
            dataset_info: PathLike | None = None, name: str | None = None,
            engine: Engine = "local", address: str | None = None, split_mib: float = 64.0,
            concat: bool = False, progress: Progress | None = None) -> RunResult:
    """Raw data → records JSONL, or SFT text with `template` (`sftdata convert`; sftdata.pipeline.convert);
    on an engine with `engine`, `address`, `split_mib`, `concat` (see the module's docstring)."""
    from ..pipeline import convert as local

    if engine == "local":
        return local(list(inputs), output, preset=preset, mapping=mapping, to=to, encoding=encoding,  # type: ignore[arg-type]
                     records_path=records_path, template=template, tokenizer=tokenizer, eos=eos, style=style,
                     template_args=template_args, train_on=train_on, split_thinking=split_thinking,
                     split_turns=split_turns, dataset_info=dataset_info, name=name, progress=progress)
    from ..errors import SftDataError
    from ..scale.run import convert as distributed
    from ..schemas.mapping import MappingSpec

    if dataset_info is not None or name is not None or preset == "llamafactory":
        raise SftDataError("the llamafactory preset runs locally only", hint="convert with --engine local")
    spec = mapping.model_dump(mode="json", by_alias=True, exclude_none=True) if isinstance(mapping, MappingSpec) else mapping
    options = {"preset": preset, "mapping": str(spec) if isinstance(spec, (str, os.PathLike)) else spec,
               "to": getattr(to, "value", to), "encoding": encoding, "records_path": records_path, "template": template,
               "tokenizer": tokenizer, "eos": eos, "style": getattr(style, "value", style),
               "template_args": list(template_args) if template_args is not None and not isinstance(template_args, dict)
               else template_args, "train_on": train_on, "split_thinking": split_thinking, "split_turns": split_turns}
    return distributed(inputs, output, engine=engine, address=address, split_mib=split_mib, concat=concat,
                       options=options)


def render(inputs: Files, output: PathLike, *, template: str = "auto", tokenizer: str | None = None,
           eos: str | None = None, style: Any = "text", kind: Any = None, template_args: TemplateArgs = None,
           train_on: TrainOn = "all", split_thinking: bool = False, split_turns: bool = False, engine: Engine = "local",
           address: str | None = None, split_mib: float = 64.0, concat: bool = False,
           progress: Progress | None = None) -> RunResult:
    """Records JSONL → SFT JSONL with exactly one EOS per trained span (`sftdata render`;
    sftdata.pipeline.render); on an engine with `engine`, `address`, `split_mib`, `concat`."""
    from ..items import Style
    from ..schemas.records import RecordKind

    options = {"template": template, "tokenizer": tokenizer, "eos": eos, "style": Style(style),
               "kind": RecordKind(kind) if kind is not None else None, "template_args": template_args,
               "train_on": train_on, "split_thinking": split_thinking, "split_turns": split_turns}
    if engine != "local":
        return _on_engine("render", inputs, output, engine, address, split_mib, concat, options)
    from ..pipeline import render as local

    return local(list(inputs), output, **options, progress=progress)


def export(input: PathLike, output: PathLike, to: str, *, eval_file: PathLike | None = None,
           name: str | None = None, license: str | None = None, force: bool = False, template: str | None = None,
           tokenizer: str | None = None, progress: Progress | None = None) -> ExportResult:
    """Records → the format a trainer or platform loads as is: trl, openai, llamafactory, axolotl, hf
    (`sftdata export`); `force` replaces an output folder sftdata did not write."""
    from ..formats.exporting import export as run

    return run(input, output, to, eval_file=eval_file, name=name, license=license, overwrite=force, template=template,
               tokenizer=tokenizer, progress=progress)


def card(input: PathLike, output: PathLike | None = None, *, license: str | None = None) -> CardResult:
    """Write or update a dataset card (README.md) from the data and its .meta.json sidecars (`sftdata card`)."""
    from ..formats.card import make_card

    return make_card(input, output, license=license)


def stats(inputs: Files, tokenizer: str, *, template: str | None = None, template_args: TemplateArgs = None, train_on: TrainOn = "all",
          max_seq_length: int | None = None, report: PathLike | None = None, progress: Progress | None = None) -> CurateResult:
    """Lengths in characters and tokens, and what max_seq_length would cut (`sftdata stats`)."""
    from ..curate.stats import stats as run

    return run(inputs, tokenizer, template=template, template_args=template_args, train_on=train_on,
               max_seq_length=max_seq_length, report=report, progress=progress)


class Inspection:
    """What `sftdata inspect` shows: samples labelled token by token, and the tokenizer's special tokens."""

    def __init__(self, samples: list[Shown], specials: Specials) -> None:
        self.samples, self.specials = samples, specials


def inspect(inputs: Files, tokenizer: str, *, template: str | None = None, template_args: TemplateArgs = None, train_on: TrainOn = "all", n: int = 3, skip: int = 0,
            ids: bool = False, pad_to: int | None = None) -> Inspection:
    """The first `n` samples (after `skip`) token by token: masked prompt, trained answer, EOS, padding.

    `ids` only changes how the CLI prints tokens; every sample carries its ids either way."""
    from ..curate.inspection import inspect_samples

    shown, encoder = inspect_samples(inputs, tokenizer, template=template, template_args=template_args,
                                     train_on=train_on, n=n, skip=skip, pad_to=pad_to)
    return Inspection(shown, encoder.specials)


def audit(inputs: Files, tokenizer: str, *, template: str | None = None, template_args: TemplateArgs = None, train_on: TrainOn = "all",
          max_seq_length: int | None = None,
          trainer: Literal["generic", "trl", "sftdata"] = "generic", eval_files: Files = (), lang: str | None = None,
          min_lang_share: float = 0.5, threshold: float = 0.7, progress: Progress | None = None) -> CurateResult:
    """Known training pitfalls of data + tokenizer + template; `result.summary()["findings"]` (`sftdata audit`)."""
    from ..curate.audit import audit as run
    from ..curate.findings import Trainer

    return run(inputs, tokenizer, template=template, template_args=template_args, train_on=train_on,
               max_seq_length=max_seq_length, trainer=Trainer(trainer),
               eval_files=eval_files, lang=lang, min_lang_share=min_lang_share, threshold=threshold, progress=progress)


def dedup(inputs: Files, output: PathLike, *, threshold: float = 0.7, against: Files = (),
          fields: Sequence[str] | None = None, engine: Engine = "local", address: str | None = None,
          split_mib: float = 64.0, concat: bool = False, progress: Progress | None = None) -> CurateResult:
    """Drop exact and near duplicates; dropped rows go to OUT.dupes.jsonl (`sftdata dedup`); on an engine
    with `engine`, `address`, `split_mib`, `concat` (sftdata.scale.dedup: the same kept rows and dupes)."""
    if engine != "local":
        from ..scale.dedup import dedup as distributed

        return distributed(inputs, output, threshold=threshold, fields=fields, against=against, engine=engine,
                           address=address, split_mib=split_mib, concat=concat)
    from ..curate.dedup import dedup as run

    return run(inputs, output, threshold=threshold, fields=fields, against=against, progress=progress)


def scrub(inputs: Files, output: PathLike | None = None, *, action: Literal["mask", "drop", "report"] = "mask",
          types: Sequence[str] = (), fields: Sequence[str] = (), name_field: Sequence[str] = (),
          placeholder: Sequence[str] = (), min_confidence: Literal["high", "low"] = "high",
          progress: Progress | None = None) -> CurateResult:
    """Mask (or drop, or count) personal information in every text field (`sftdata scrub`): resident and
    foreign registration numbers, phones, e-mail, business numbers, cards, accounts, passports, driver's
    licences, addresses, IP addresses, and names from `name_field`. `placeholder` items are TYPE=TEXT."""
    from ..curate.scrub import parse_spec
    from ..curate.scrub import scrub as run

    spec = parse_spec(action, types, fields, name_field, placeholder, min_confidence)
    return run(inputs, output, spec, progress=progress)


def decontaminate(inputs: Files, output: PathLike | None = None, *, against: Files, ngram: int | None = None,
                  threshold: float = 0.8, min_span: int = 50, fields: Sequence[str] = (),
                  action: Literal["drop", "report"] = "drop", against_preset: str | None = None,
                  against_map: str | None = None, common: int = 20, progress: Progress | None = None) -> CurateResult:
    """Drop training rows that hold an eval item, by character n-grams robust to Korean particles and
    spacing (`sftdata decontaminate`); the summary has the contamination rate per eval file."""
    from ..curate.decontaminate import decontaminate as run

    return run(inputs, output, against=against, ngram=ngram, threshold=threshold, min_span=min_span,
               fields=list(fields) or None, action=action, against_preset=against_preset, against_map=against_map,
               common=common, progress=progress)


def mix(sources: Sequence[str], output: PathLike, *, by: Literal["trained-tokens", "rows"] = "trained-tokens",
        total: int | None = None, tokens: int | None = None, tokenizer: str | None = None, template: str | None = None,
        template_args: TemplateArgs = None, train_on: TrainOn = "all", max_seq_length: int | None = None,
        max_repeat: float = 1.0, seed: int = 0, progress: Progress | None = None) -> CurateResult:
    """Draw from `PATH:WEIGHT` sources so each one's share of trained tokens (or rows) is its weight (`sftdata mix`)."""
    from ..curate.mix import mix as run

    return run(sources, output, by=by, total=total, tokens=tokens, tokenizer=tokenizer, template=template,
               template_args=template_args, train_on=train_on, max_seq_length=max_seq_length, max_repeat=max_repeat,
               seed=seed, progress=progress)


def filter(inputs: Files, output: PathLike, *, min_chars: int | None = None,
           max_chars: int | None = None, max_tokens: int | None = None, max_reasoning_tokens: int | None = None,
           tokenizer: str | None = None,
           template: str | None = None, template_args: TemplateArgs = None, train_on: TrainOn = "all", deny: Sequence[str] = (), lang: str | None = None,
           min_lang_share: float = 0.5, drop_refusals: bool = False, engine: Engine = "local",
           address: str | None = None, split_mib: float = 64.0, concat: bool = False,
           progress: Progress | None = None) -> CurateResult:
    """Drop rows by length, tokens, patterns, language mix or refusals (`sftdata filter`); on an engine with
    `engine`, `address`, `split_mib`, `concat`."""
    from ..curate.filters import FilterSpec, RowFilter, filter_records

    spec = FilterSpec(min_chars=min_chars, max_chars=max_chars, max_tokens=max_tokens,
                      max_reasoning_tokens=max_reasoning_tokens, deny=list(deny), lang=lang,
                      min_lang_share=min_lang_share, drop_refusals=drop_refusals)
    options = {"spec": spec, "tokenizer": tokenizer, "template": template, "template_args": template_args,
               "train_on": train_on}
    if engine != "local":
        RowFilter(spec)  # a bad --deny pattern or --lang fails here, as locally, before any task runs
        return _on_engine("filter", inputs, output, engine, address, split_mib, concat, options)
    return filter_records(inputs, output, **options, progress=progress)


def split(inputs: Files, output: PathLike, *, eval_ratio: float = 0.05, seed: int = 0, group_near_dups: bool = False,
          threshold: float = 0.7, progress: Progress | None = None) -> CurateResult:
    """OUTPUT/train.jsonl and OUTPUT/eval.jsonl by a stable hash of each record and the seed (`sftdata split`)."""
    from ..curate.split import split as run

    return run(inputs, output, eval_ratio=eval_ratio, seed=seed, group_near_dups=group_near_dups,
               threshold=threshold, progress=progress)


def pretokenize(inputs: Files, output: PathLike, *, tokenizer: str, template: str, max_seq_length: int,
                on_overflow: Literal["drop", "truncate"] = "drop", template_args: TemplateArgs = None,
                train_on: TrainOn = "all", engine: Engine = "local", address: str | None = None,
                split_mib: float = 64.0, concat: bool = False, progress: Progress | None = None) -> CurateResult:
    """input_ids with completion_mask or assistant_masks for TRL's SFTTrainer (`sftdata pretokenize`); on an
    engine with `engine`, `address`, `split_mib`, `concat`."""
    from ..curate.pretokenize import Overflow
    from ..curate.pretokenize import pretokenize as run

    options = {"tokenizer": tokenizer, "template": template, "max_seq_length": max_seq_length,
               "on_overflow": Overflow(on_overflow), "template_args": template_args, "train_on": train_on}
    if engine != "local":
        return _on_engine("pretokenize", inputs, output, engine, address, split_mib, concat, options)
    return run(inputs, output, **options, progress=progress)


def synth(seeds: PathLike, output: PathLike, *, count: int,
          mode: Literal["self-instruct", "answer", "evolve"] = "self-instruct", model: str | None = None,
          base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY", concurrency: int = 4,
          rpm: float | None = None, tpm: float | None = None, template: str | None = None,
          lang: Literal["ko", "en"] | None = None, seed: int = 0, max_requests: int | None = None,
          response_format: Literal["auto", "json_schema", "json_object", "none"] = "auto", max_tokens: int = 1024,
          temperature: float = 0.7, top_p: float = 1.0, few_shot: int = 3, per_request: int = 3,
          timeout: float = 120.0, retries: int = 6, backoff: float = 1.0, novelty: float = 0.5,
          check_lang: bool | None = None, min_output_chars: int = 2, deny_list: PathLike | None = None,
          price_in: float | None = None,
          price_out: float | None = None, progress: Any = None) -> SynthResult:
    """Generate records from seeds with an LLM: self-instruct, answer or evolve (`sftdata synth`).

    Without `base_url` the model is local (a directory or .gguf); the API key is read from the environment
    variable named by `api_key_env`, never passed or stored."""
    from ..synthesis import SynthOptions
    from ..synthesis import synth as run

    options = SynthOptions(
        mode=mode, count=count, model=model, base_url=base_url, api_key_env=api_key_env, concurrency=concurrency,
        rpm=rpm, tpm=tpm, template=template, lang=lang, seed=seed, max_requests=max_requests,
        response_format=response_format, max_tokens=max_tokens, temperature=temperature, top_p=top_p,
        few_shot=few_shot, per_request=per_request, timeout=timeout, retries=retries, backoff=backoff,
        novelty=novelty, check_lang=check_lang, min_output_chars=min_output_chars,
        deny_list=str(deny_list) if deny_list else None,
        price_in=price_in, price_out=price_out)
    return run(seeds, output, options, progress=progress)


def train(data: Files, model: PathLike, output: PathLike, *, config: PathLike | None = None,
          template: str | None = None, template_args: TemplateArgs = None, train_on: TrainOn = "all",
          eval_data: Files | None = None, resume: bool = False, overwrite: bool = False,
          progress: Any = None, **overrides: Any) -> TrainResult:
    """Train a QLoRA adapter (`sftdata train`). `config` is a preset name or YAML file; every other keyword is
    a TrainConfig field overriding it (`lora_r=16, max_steps=30`), as the command's flags do."""
    from ..rendering.plan import parse_template_args
    from ..trainers.config import resolve_config
    from ..trainers.qlora import train as run

    out = Path(output)
    base = config or (out / "config.yaml" if resume and (out / "config.yaml").is_file() else None)
    cfg = resolve_config(base, overrides)
    return run(list(data), model, out, config=cfg, template=template, eval_data=list(eval_data) if eval_data else None,
               resume=resume, overwrite=overwrite, template_args=parse_template_args(template_args), train_on=train_on,
               progress=progress)


def plan(model: PathLike, *, config: PathLike | None = None, gpu: str | None = None, **overrides: Any) -> Plan:
    """Peak GPU memory of a run estimated from the model's config alone (`sftdata plan`)."""
    from ..trainers import plan as planner
    from ..trainers.config import resolve_config

    return planner.plan(planner.read_arch(model), resolve_config(config, overrides), gpu)


def merge(run: PathLike, output: PathLike, *, overwrite: bool = False) -> Path:
    """Merge the adapter into the dequantized base and save plain safetensors (`sftdata merge`)."""
    from ..trainers.infer import merge as run_merge

    return run_merge(run, output, overwrite=overwrite)


def generate(run: PathLike, prompt: Sequence[str], *, max_new_tokens: int = 128,
             compare_base: bool = False, progress: Any = None) -> list[Generation]:
    """Answer prompts with the tuned model, rendered with the training template (`sftdata generate`);
    `progress` gets a `Generated` event (model, tokens, seconds) after each answer."""
    from ..trainers.infer import generate as run_generate

    return run_generate(run, list(prompt), max_new_tokens=max_new_tokens, compare_base=compare_base,
                        progress=progress)


def export_gguf(run: PathLike, output: PathLike, *, merge: bool = False, outtype: str = "f16",
                llama_cpp: PathLike | None = None, overwrite: bool = False) -> GgufExport:
    """Convert a run to GGUF with the training template and stop token (`sftdata export-gguf`)."""
    from ..trainers.gguf import export_gguf as run_export

    return run_export(run, output, merge=merge, outtype=outtype, llama_cpp=llama_cpp, overwrite=overwrite)


def serve_check(target: PathLike, prompt: Sequence[str], *, expect: str | None = None, base: PathLike | None = None,
                endpoint: Literal["auto", "completion", "chat"] = "auto", max_tokens: int = 128,
                compare_base: bool = False, threads: int | None = None,
                llama_cpp: PathLike | None = None) -> ServeCheck:
    """Serve a run or GGUF with llama.cpp on 127.0.0.1 and ask it the prompts (`sftdata serve-check`)."""
    from ..trainers.serve import serve_check as run_check

    return run_check(target, list(prompt), expect=expect, base=base, endpoint=endpoint, max_tokens=max_tokens,
                     compare_base=compare_base, llama_cpp=llama_cpp, threads=threads)


def eval(target: PathLike, data: Files, *, output: PathLike | None = None, base: bool = False,
         n: int | None = None, max_new_tokens: int = 128, lang: str | None = None, base_url: str | None = None,
         model: str | None = None, api_key_env: str = "OPENAI_API_KEY", base_gguf: PathLike | None = None,
         concurrency: int = 4, batch_size: int = 8, judge_base_url: str | None = None, judge_model: str | None = None,
         judge_api_key_env: str = "OPENAI_API_KEY", judge_lang: Literal["ko", "en"] = "ko",
         judge_versus: Literal["base", "reference"] = "base", judge_template: str | None = None,
         judge_concurrency: int = 4, judge_rpm: float | None = None, judge_tpm: float | None = None,
         judge_retries: int = 6, report: PathLike | None = None, fail_under: Sequence[str] = (),
         llama_cpp: PathLike | None = None, threads: int | None = None, progress: Any = None) -> EvalResult:
    """Did the fine-tune help (`sftdata eval`)? Loss, generation metrics and an optional pairwise judge of a run
    or GGUF against its base on held-out records; `result.failed()` lists the `fail_under` gates not met."""
    from ..evaluation.evaluate import evaluate
    from ..evaluation.judge import JudgeOptions, check_options

    judge = None
    if judge_base_url:
        judge = JudgeOptions(judge_base_url, judge_model, judge_api_key_env, judge_lang, judge_template, judge_versus,
                             judge_concurrency, judge_rpm, judge_tpm, retries=judge_retries)
        check_options(judge)
    return evaluate(target, data, output=output, base=base, n=n, max_new_tokens=max_new_tokens, lang=lang,
                    base_url=base_url, model=model, api_key_env=api_key_env, base_gguf=base_gguf,
                    concurrency=concurrency, batch_size=batch_size, judge=judge, report=report, fail_under=fail_under,
                    llama_cpp=llama_cpp, threads=threads, progress=progress)
