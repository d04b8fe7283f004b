"""A run's training template as serving needs it: the prompt text, a GGUF chat template, an Ollama TEMPLATE.

Training rendered every sample with one template (saved as ``template.jinja``, name + sha256 in
``sftdata_train.json``) and ended every completion with one EOS. A server must build prompts the same
way, so this module derives, from that template alone:

* ``prompt(text)``: the prompt part of a one-turn sample, rendered by the training Renderer itself;
* ``chat_template()``: Jinja for the GGUF key ``tokenizer.chat_template``. A chat template (chatml,
  llama3, the tokenizer's own) is used as it is; a block template (alpaca, qa_ko, a user file with
  ``{% block prompt %}``) is wrapped so the last user message fills its prompt variables. Either way it
  is rendered here with the environment servers use (Hugging Face / llama.cpp: sandboxed,
  ``trim_blocks``, ``lstrip_blocks``) and compared with ``prompt()``; a template that renders
  differently there is not offered (None), rather than served subtly wrong. The run's template
  arguments (``enable_thinking=false``, ``date_string``) are set at the template's top
  (``{%- set enable_thinking = false -%}``), so a server renders with them without being told;
* ``ollama_template()``: the Go template of an Ollama Modelfile for block templates, made by rendering
  the prompt with placeholder values and putting ``{{ .Prompt }}``/``{{ .System }}`` in their place.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import TrainError
from ..items import Locator

_PROMPT = "\ue000sftdata-prompt\ue000"
_SYSTEM = "\ue000sftdata-system\ue000"
_PROBE = "Name three colours. {{ literal braces }} <b>"
_GENERATION = re.compile(r"\{%-?\s*(?:end)?generation\s*-?%\}")
_PROMPT_BLOCK = re.compile(r"\{%(-?)\s*block\s+prompt\s*(-?)%\}(.*?)\{%(-?)\s*endblock(?:\s+prompt)?\s*-?%\}", re.S)
# What a block template's variables are bound to in the derived chat template, per record kind.
_BINDINGS = {
    "instruction": "{%- set instruction = ns.user -%}{%- set input = '' -%}{%- set system = ns.system -%}"
                   "{%- set output = ns.answer -%}",
    "qa": "{%- set question = ns.user -%}{%- set context = '' -%}{%- set answer = ns.answer -%}",
}
_HEADER = """{#- sftdata: the prompt block of the training template NAME, for one user turn -#}
{%- set ns = namespace(system='', user='', answer='') -%}
{%- for message in messages -%}
{%- if message['role'] == 'system' -%}{%- set ns.system = message['content'] -%}
{%- elif message['role'] == 'user' -%}{%- set ns.user = message['content'] -%}{%- set ns.answer = '' -%}
{%- elif message['role'] == 'assistant' -%}{%- set ns.answer = message['content'] -%}
{%- endif -%}
{%- endfor -%}
"""
_FOOTER = "{%- if not add_generation_prompt and ns.answer -%}{{ ns.answer }}{{ eos_token }}{%- endif -%}"


@dataclass(slots=True)
class PromptFormat:
    """The template and stop token a run trained with, and the Renderer that applied them."""

    name: str
    kind: str  # "chat", "instruction" or "qa"
    source: str  # the Jinja text of the training template
    sha256: str
    eos: str
    eos_id: int | None
    bos: str
    renderer: Any  # sftdata.rendering.templating.Renderer

    @property
    def is_chat(self) -> bool:
        return self.kind == "chat"

    def prompt(self, text: str, system: str | None = None) -> str:
        """The prompt part of a one-turn sample, exactly as training rendered it (no BOS: the tokenizer adds it)."""
        from ..items import Rendered
        from ..schemas.records import InstructionRecord

        record = InstructionRecord(instruction=text, output="…", system=system)
        rendered = self.renderer.render(record, Locator("<prompt>"))
        if not isinstance(rendered, Rendered):
            raise TrainError(f"the prompt cannot be rendered with the training template {self.name!r}: "
                             f"{rendered.message}")
        return rendered.split()[0]

    def chat_template(self) -> str | None:
        """Jinja for ``tokenizer.chat_template`` that renders a user turn as training did, or None."""
        if self.is_chat:  # generation blocks mark training spans; servers' Jinja (llama.cpp) does not know the tag
            candidate = _GENERATION.sub("", self.source)
        else:
            match = _PROMPT_BLOCK.search(self.source)
            if match is None or self.kind not in _BINDINGS:
                return None
            body = match.group(3)
            body = body.lstrip() if match.group(2) else body
            body = body.rstrip() if match.group(4) else body
            # `{% if true %}` stands where `{% block prompt %}` stood: the same tag-trimming around the body.
            candidate = _HEADER.replace("NAME", self.name.replace("#", "")) + _BINDINGS[self.kind] + "{% if true %}" + body + "{% endif -%}" + _FOOTER
        pinned = _pin_arguments(self.renderer.template.args)
        if pinned is None:
            return None
        candidate = pinned + candidate
        return candidate if self._renders_like_training(candidate) else None

    def _renders_like_training(self, template: str) -> bool:
        probes: list[tuple[str | None, list[dict[str, str]]]] = [(None, [{"role": "user", "content": _PROBE}])]
        if self.kind != "qa":
            probes.append(("Be brief.", [{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": _PROBE}]))
        try:
            compiled = server_environment().from_string(template)
            for system, messages in probes:
                served = compiled.render(messages=messages, add_generation_prompt=True, eos_token=self.eos,
                                         bos_token=self.bos)
                if served != self.prompt(_PROBE, system):
                    return False
        except Exception:  # a template servers cannot render at all (syntax their Jinja lacks, raise_exception)
            return False
        return True

    def ollama_template(self) -> str | None:
        """The TEMPLATE of an Ollama Modelfile (Go template syntax) for a block template; None for chat ones."""
        if self.is_chat:
            return None
        plain = self.prompt(_PROMPT)
        with_system = self.prompt(_PROMPT, _SYSTEM) if self.kind == "instruction" else plain
        if _PROMPT not in plain:
            return None
        body = _go(plain) if with_system == plain else \
            "{{ if .System }}" + _go(with_system) + "{{ else }}" + _go(plain) + "{{ end }}"
        return body + "{{ .Response }}"


def _pin_arguments(args: dict[str, Any]) -> str | None:
    """`{%- set KEY = VALUE -%}` for each template argument (a top-level set shadows what a server passes), or
    None when one cannot be written as a Jinja literal."""
    lines = []
    for key, value in args.items():
        if not key.isidentifier():
            return None
        if isinstance(value, bool) or value is None:
            literal = {True: "true", False: "false", None: "none"}[value]
        elif isinstance(value, (int, float, str)):
            literal = json.dumps(value)  # a JSON string or number is a Jinja literal (\uXXXX escapes included)
        else:
            return None
        lines.append(f"{{%- set {key} = {literal} -%}}\n")
    return "".join(lines)


def _go(text: str) -> str:
    literal = text.replace("{{", '{{ "{{" }}')
    return literal.replace(_PROMPT, "{{ .Prompt }}").replace(_SYSTEM, "{{ .System }}")


def server_environment() -> Any:
    """The Jinja environment chat templates are rendered with by transformers and llama-cpp-python."""
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])

    def raise_exception(message: str) -> None:
        raise ValueError(message)

    env.globals["raise_exception"] = raise_exception
    return env


def load_prompt_format(run_dir: str | Path, info: dict[str, Any] | None = None) -> PromptFormat:
    """The prompt format of a finished training output directory."""
    from ..tokenize.load import load_tokenizer
    from .infer import _renderer
    from .outputs import read_info

    out = Path(run_dir)
    info = info or read_info(out)
    tokenizer = load_tokenizer(out)
    renderer, _ = _renderer(out, info, tokenizer)
    template = renderer.template
    return PromptFormat(template.name, template.kind.value, template.source, template.sha256, info["eos"],
                        info.get("eos_id"), renderer.bos or "", renderer)


def modelfile(gguf_name: str, fmt: PromptFormat, base: str | None = None) -> str | None:
    """An Ollama Modelfile beside the export (None for chat templates, whose GGUF metadata says it all).

    ``base``: for a LoRA export, the base model GGUF the adapter applies to."""
    template = fmt.ollama_template()
    if template is None or '"""' in template:
        return None
    source = f"FROM {base}\nADAPTER ./{gguf_name}\n" if base else f"FROM ./{gguf_name}\n"
    return (f"# Ollama Modelfile written by `sftdata export-gguf`: the prompt format the model was trained with\n"
            f"# (template {fmt.name}, sha256 {fmt.sha256[:12]}…) and its stop token.\n"
            f'{source}TEMPLATE """{template}"""\nPARAMETER stop {json.dumps(fmt.eos, ensure_ascii=False)}\n')
