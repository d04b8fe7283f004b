"""Apply a MappingSpec (or a preset) to raw items: RawItem → Records, or Rejects naming the path."""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from ..errors import MappingError
from ..items import Locator, RawItem, Reject, Stage
from ..schemas.mapping import PRESETS, FieldSource, MappingSpec, meta_key, preset
from ..schemas.records import Record, Role, record_model
from .paths import (
    EACH,
    Each,
    PathNotFound,
    PathSyntaxError,
    Step,
    bind,
    check_bound,
    expand,
    format_path,
    parse_path,
    resolve,
)
from .validation import reject_from_validation

PRESET_NAMES = tuple(PRESETS)


def load_mapping(path: str | Path) -> MappingSpec:
    """Read and validate a mapping file; any problem is one MappingError naming the file."""
    import yaml  # here, not at the top: every command reading records imports this module, few read a mapping

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise MappingError(f"cannot read mapping: {error.strerror or error}", file=str(path)) from None
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise MappingError(f"not valid YAML: {error}", file=str(path)) from None
    return mapping_from_data(data, source=str(path))


def mapping_from_data(data: Any, source: str = "mapping") -> MappingSpec:
    try:
        spec = MappingSpec.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"{format_path(tuple(e['loc'])) or 'mapping'}: {e['msg']}" for e in error.errors())
        raise MappingError(f"invalid mapping: {problems}", file=source) from None
    try:
        Mapper(spec)
    except PathSyntaxError as error:
        raise MappingError(f"invalid mapping: {error}", file=source) from None
    return spec


def resolve_spec(preset_name: str | None, mapping: str | Path | MappingSpec | None) -> MappingSpec:
    if preset_name and mapping:
        raise MappingError("give either a preset or a mapping file, not both")
    if isinstance(mapping, MappingSpec):
        return mapping
    if mapping:
        return load_mapping(mapping)
    name = preset_name or "alpaca"
    if name not in PRESETS:
        raise MappingError(f"unknown preset {name!r}", hint=f"choose one of {', '.join(PRESET_NAMES)}")
    return preset(name)


@dataclasses.dataclass(slots=True)
class Mapped:
    record: Record
    locator: Locator


class _Missing(Exception):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason)
        self.path, self.reason = path, reason


class Mapper:
    """Compiled form of a MappingSpec: paths parsed once, applied to each raw item."""

    def __init__(self, spec: MappingSpec) -> None:
        self.spec = spec
        self.kind = spec.to
        self.model = record_model(spec.to)
        self.fields = {name: (src, [parse_path(p) for p in src.paths()]) for name, src in spec.sources().items()}
        explode = parse_path(spec.explode) if spec.explode else None
        if explode and isinstance(explode[-1], Each):  # `qas[]` is `qas`: explode takes each element anyway
            explode = explode[:-1]
        if explode == ():
            raise PathSyntaxError("explode: [] alone names no list")
        self.explode = explode
        msgs = spec.messages
        self.messages = parse_path(msgs.path) if msgs else None
        self.system_path = parse_path(msgs.system_path) if msgs and msgs.system_path else None
        self.tools_path = parse_path(msgs.tools_path) if msgs and msgs.tools_path else None
        used = [p for _, paths in self.fields.values() for p in paths]
        used += [p for p in (self.explode, self.messages, self.system_path, self.tools_path) if p]
        # what keep_unmapped leaves out of meta: each path's keys (a path through a list takes the list whole)
        self.used = _used_tree(p for p in used if not (spec.explode and p[0] == spec.as_))
        self.meta_keys = {name: keys for name in self.fields if (keys := meta_key(name))}
        # `[]` in the explode path or a field path: read with expand, each field's `[]` bound to the element read
        self.pattern = (*explode, EACH) if explode else ()
        self.nested = any(EACH in p for p in used)
        for steps in used:
            if steps is not self.explode:
                check_bound(steps, self.pattern)
        self._at: tuple[Step, ...] = ()  # the concrete path of the element being mapped (nested explode)

    def map(self, item: RawItem) -> Iterator[Mapped | Reject]:
        """One record per raw item, or one per element of the exploded list."""
        if not isinstance(item.data, dict):
            yield Reject(Stage.map, "not_an_object", f"expected a JSON object, found {type(item.data).__name__}",
                         item.locator, raw=item.data)
            return
        if self.explode is None:
            yield self._one(item.data, None, item.locator, item.data)
            return
        if self.nested:
            yield from self._nested(item)
            return
        try:
            elements = resolve(item.data, self.explode)
        except PathNotFound as error:
            yield Reject(Stage.map, "path_missing", str(error), item.locator, source_path=self.spec.explode,
                         raw=item.data)
            return
        if not isinstance(elements, list) or not elements:
            what = "an empty list" if isinstance(elements, list) else f"a {type(elements).__name__}"
            yield Reject(Stage.map, "explode_not_list", f"{self.spec.explode} is {what}; expected a non-empty list",
                         item.locator, source_path=self.spec.explode, raw=item.data)
            return
        for position, element in enumerate(elements):
            locator = dataclasses.replace(item.locator, element=position)
            yield self._one(item.data, element, locator, element)

    def _nested(self, item: RawItem) -> Iterator[Mapped | Reject]:
        """One record per element an explode path with `[]` reaches (data[].paragraphs[].qas[]), numbered in order;
        a branch that does not go through is one reject naming where it stops, and the rest are read."""
        count = 0
        for count, (where, element) in enumerate(expand(item.data, self.pattern), 1):
            locator = dataclasses.replace(item.locator, element=count - 1)
            if isinstance(element, PathNotFound):
                reason = "explode_not_list" if "expected a list" in str(element) else "path_missing"
                yield Reject(Stage.map, reason, str(element), locator, source_path=self.spec.explode,
                             raw=resolve(item.data, where))
                continue
            self._at = where
            yield self._one(item.data, element, locator, element)
        if not count:
            yield Reject(Stage.map, "explode_not_list", f"{self.spec.explode} reaches no element (each list on the "
                         "way is empty)", item.locator, source_path=self.spec.explode, raw=item.data)

    def _get(self, data: dict[str, Any], element: Any, steps: tuple[Step, ...]) -> Any:
        if element is not None and steps[0] == self.spec.as_:
            return resolve(element, steps[1:]) if len(steps) > 1 else element
        if self.nested and EACH in steps:
            steps = bind(steps, self._at)
        return resolve(data, steps)

    def _as_hint(self, path: str, element: Any) -> str:
        """A path that misses on an exploded element probably should start with the `as:` name."""
        if (element is None or not self.spec.explode or "[]" in path
                or path.split(".")[0].split("[")[0] == self.spec.as_):
            return ""
        return (f" (each element of {self.spec.explode} is named {self.spec.as_!r} by `as:`: write "
                f"{self.spec.as_}.… for its fields)")

    def _value(self, data: dict[str, Any], element: Any, src: FieldSource, paths: list[tuple[Step, ...]]) -> Any:
        if src.const is not None:
            return src.const
        if src.path is not None:
            try:
                value = self._get(data, element, paths[0])
            except PathNotFound as error:
                raise _Missing(src.path, str(error) + self._as_hint(src.path, element)) from None
            if src.as_text and isinstance(value, (bool, int, float)):
                return json.dumps(value)  # 1446 → "1446", True → "true"
            return value
        parts = []
        for text, steps in zip(src.join or [], paths):
            try:
                value = self._get(data, element, steps)
            except PathNotFound:
                continue
            if value is None or value == "":
                continue
            if not isinstance(value, str):
                raise _Missing(text, f"{text}: expected text to join, found {type(value).__name__}")
            parts.append(value)
        if not parts:
            raise _Missing(" + ".join(src.join or []), "none of the joined paths has a value")
        return src.sep.join(parts)

    def _one(self, data: dict[str, Any], element: Any, locator: Locator, raw: Any) -> Mapped | Reject:
        values: dict[str, Any] = {}
        meta: dict[tuple[str, ...], Any] = {}  # meta.KEY fields, placed after what keep_unmapped keeps
        try:
            for name, (src, paths) in self.fields.items():
                try:
                    value = self._value(data, element, src, paths)
                except _Missing:
                    if src.required:
                        raise
                    continue
                if value is None or (value == "" and not src.required and name not in ("input",)):
                    continue  # an empty cell means "absent" for optional fields (CSV has no null)
                if name in self.meta_keys:
                    meta[self.meta_keys[name]] = value
                else:
                    values[name] = value
            if self.messages is not None:
                values.update(self._chat(data, element))
        except _Missing as missing:
            return Reject(Stage.map, "path_missing", missing.reason, locator, source_path=missing.path, raw=raw)
        except _BadTurn as bad:
            return Reject(Stage.map, bad.reason, bad.message, locator, field=bad.field, raw=raw)
        extra = _unread(data, self.used) if self.spec.keep_unmapped else {}
        for keys, value in meta.items():
            extra = _placed(extra, keys, value)
        if extra:
            values["meta"] = extra
        try:
            return Mapped(self.model.model_validate(values), locator)  # type: ignore[arg-type]
        except ValidationError as error:
            return reject_from_validation(error, locator, raw, self.source_paths())

    def source_paths(self) -> dict[str, str]:
        paths = {name: " + ".join(src.paths()) for name, (src, _) in self.fields.items() if src.paths()}
        if self.spec.messages:
            paths["messages"] = self.spec.messages.path
        return paths

    def _chat(self, data: dict[str, Any], element: Any) -> dict[str, Any]:
        spec = self.spec.messages
        assert spec is not None and self.messages is not None
        try:
            turns = self._get(data, element, self.messages)
        except PathNotFound as error:
            raise _Missing(spec.path, str(error)) from None
        if not isinstance(turns, list):
            raise _BadTurn("wrong_type", f"{spec.path}: expected a list of turns, found {type(turns).__name__}",
                           "messages")
        messages = [self._turn(index, turn) for index, turn in enumerate(turns)]
        out: dict[str, Any] = {}
        if self.system_path is not None:
            system = self._optional(data, element, self.system_path)
            if isinstance(system, str) and system.strip():
                messages.insert(0, {"role": "system", "content": system})
        out["messages"] = messages
        if self.tools_path is not None:
            tools = self._optional(data, element, self.tools_path)
            if isinstance(tools, str) and tools.strip():
                try:
                    tools = orjson.loads(tools)
                except orjson.JSONDecodeError as error:
                    raise _BadTurn("invalid_json", f"tools: not valid JSON ({error.msg})", "tools") from None
            if tools not in (None, "", []):
                out["tools"] = tools
        return out

    def _optional(self, data: dict[str, Any], element: Any, steps: tuple[Step, ...]) -> Any:
        try:
            return self._get(data, element, steps)
        except PathNotFound:
            return None

    def _turn(self, index: int, turn: Any) -> dict[str, Any]:
        spec = self.spec.messages
        assert spec is not None
        if not isinstance(turn, dict):
            raise _BadTurn("wrong_type", f"message {index}: expected an object, found {type(turn).__name__}",
                           f"messages[{index}]")
        out = {k: v for k, v in turn.items() if k not in (spec.role_key, spec.content_key)}
        tag = turn.get(spec.role_key)
        role = spec.roles.get(tag, tag) if isinstance(tag, str) else tag
        if isinstance(role, str) and role not in Role._value2member_map_:
            raise _BadTurn("unknown_role", f"message {index}: unknown role tag {tag!r}", f"messages[{index}].role")
        out["role"] = role
        content = turn.get(spec.content_key)
        if content is not None or spec.content_key in turn:
            out["content"] = "" if content is None and out.get("tool_calls") else content
        return out


def _used_tree(paths: Iterable[tuple[Step, ...]]) -> dict[str, Any]:
    """The keys the paths read, as a tree: True where a value is read whole (the path's end, or a list the
    path indexes or takes each element of), a dict where only some of an object's keys are read."""
    tree: dict[str, Any] = {}
    for steps in paths:
        keys = []
        for step in steps:
            if not isinstance(step, str):
                break
            keys.append(step)
        node: Any = tree
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if node is True:
                break
        else:
            if keys:
                node[keys[-1]] = True
    return tree


def _unread(data: dict[str, Any], used: dict[str, Any]) -> dict[str, Any]:
    """`data` without what the paths read: an object some keys of which are read keeps the others; one left
    empty by that goes. The raw data is not changed (it is shared by the elements of an exploded list)."""
    out = {}
    for key, value in data.items():
        read = used.get(key)
        if read is True:
            continue
        if read and isinstance(value, dict) and value:
            rest = _unread(value, read)
            if rest:
                out[key] = rest
        else:
            out[key] = value
    return out


def _placed(meta: dict[str, Any], keys: tuple[str, ...], value: Any) -> dict[str, Any]:
    """`meta` with `value` at keys (a copy along the way: objects in it may be the raw data's)."""
    out = dict(meta)
    inner = out.get(keys[0]) if len(keys) > 1 else None
    out[keys[0]] = _placed(inner if isinstance(inner, dict) else {}, keys[1:], value) if len(keys) > 1 else value
    return out


class _BadTurn(Exception):
    def __init__(self, reason: str, message: str, field: str) -> None:
        super().__init__(message)
        self.reason, self.message, self.field = reason, message, field
