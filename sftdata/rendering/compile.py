"""Simple block templates → polars expressions, so the columnar path renders with the same template.

A template's ``prompt`` and ``completion`` blocks are parsed again with the render environment's
settings (trim_blocks/lstrip_blocks are applied by the lexer, so TemplateData carries exact text)
and turned into a small tree of parts: literal text, ``{{ name }}``, and ``{% if %}/{% elif %}/
{% else %}`` on names (with ``not``, ``and``, ``or``). Anything else (filters, loops, calls,
attribute access, ``set``, nested blocks, ``extends``) makes the template not compilable, and
the caller renders those rows with Jinja.

Jinja semantics kept exactly: ``{{ x }}`` prints ``str(x)`` (so a missing optional field prints
"None"); a test is Python truthiness (empty string, None and 0 are false).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import polars as pl
from jinja2 import nodes

from .templating import Template, make_env


@dataclass(frozen=True, slots=True)
class Var:
    """One template variable as columns: its printed text and its truthiness (both never null)."""

    text: pl.Expr
    truthy: pl.Expr


# The compiled tree: str (literal text), Name (a variable), Cond (if/elif/else), tuple (a sequence).
@dataclass(frozen=True, slots=True)
class Name:
    name: str


@dataclass(frozen=True, slots=True)
class Test:
    op: str  # "var", "not", "and", "or"
    args: tuple


@dataclass(frozen=True, slots=True)
class Cond:
    branches: tuple  # ((Test, part), ...)
    otherwise: object


@dataclass(frozen=True, slots=True)
class Blocks:
    prompt: object
    completion: object
    names: frozenset[str]


class _NotCompilable(Exception):
    pass


def compile_blocks(template: Template, names: set[str]) -> Blocks | None:
    """The prompt and completion blocks as trees, or None when the template is not this simple.
    `names` are the variables a record provides; any other name is left to Jinja (and its error)."""
    tree = make_env().parse(template.source)
    if any(True for _ in tree.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport))):
        return None
    blocks = {b.name: b for b in tree.find_all(nodes.Block)}
    if "prompt" not in blocks or "completion" not in blocks:
        return None
    used: set[str] = set()
    try:
        prompt = _body(blocks["prompt"].body, names, used)
        completion = _body(blocks["completion"].body, names, used)
    except _NotCompilable:
        return None
    return Blocks(prompt, completion, frozenset(used))


def _body(body: list[nodes.Node], names: set[str], used: set[str]) -> object:
    parts: list[object] = []
    for node in body:
        if isinstance(node, nodes.Output):
            parts += [_output(child, names, used) for child in node.nodes]
        elif isinstance(node, nodes.If):
            branches = [(_test(node.test, names, used), _body(node.body, names, used))]
            branches += [(_test(e.test, names, used), _body(e.body, names, used)) for e in node.elif_]
            parts.append(Cond(tuple(branches), _body(node.else_, names, used)))
        else:
            raise _NotCompilable(type(node).__name__)
    return tuple(parts)


def _output(node: nodes.Node, names: set[str], used: set[str]) -> object:
    if isinstance(node, nodes.TemplateData):
        return node.data
    if isinstance(node, nodes.Const) and isinstance(node.value, str):
        return node.value
    return _name(node, names, used)


def _name(node: nodes.Node, names: set[str], used: set[str]) -> Name:
    if isinstance(node, nodes.Name) and node.ctx == "load" and node.name in names:
        used.add(node.name)
        return Name(node.name)
    raise _NotCompilable(type(node).__name__)


def _test(node: nodes.Node, names: set[str], used: set[str]) -> Test:
    if isinstance(node, nodes.Not):
        return Test("not", (_test(node.node, names, used),))
    if isinstance(node, (nodes.And, nodes.Or)):
        op = "and" if isinstance(node, nodes.And) else "or"
        return Test(op, (_test(node.left, names, used), _test(node.right, names, used)))
    return Test("var", (_name(node, names, used).name,))


def to_expr(part: object, variables: Mapping[str, Var]) -> pl.Expr:
    """The text a compiled part renders to, as a String expression (never null)."""
    if isinstance(part, str):
        return pl.lit(part, dtype=pl.String)
    if isinstance(part, Name):
        return variables[part.name].text
    if isinstance(part, Cond):
        (test, body), *rest = part.branches
        chain = pl.when(_test_expr(test, variables)).then(to_expr(body, variables))
        for test, body in rest:
            chain = chain.when(_test_expr(test, variables)).then(to_expr(body, variables))
        return chain.otherwise(to_expr(part.otherwise, variables))
    pieces = _merge_literals(part)  # type: ignore[arg-type]
    if not pieces:
        return pl.lit("", dtype=pl.String)
    if len(pieces) == 1:
        return to_expr(pieces[0], variables)
    return pl.concat_str([to_expr(p, variables) for p in pieces])


def _merge_literals(parts: tuple) -> list[object]:
    merged: list[object] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        elif part != "":
            merged.append(part)
    return merged


_OPS: dict[str, Callable[[pl.Expr, pl.Expr], pl.Expr]] = {"and": pl.Expr.and_, "or": pl.Expr.or_}


def _test_expr(test: Test, variables: Mapping[str, Var]) -> pl.Expr:
    if test.op == "var":
        return variables[test.args[0]].truthy
    if test.op == "not":
        return ~_test_expr(test.args[0], variables)
    return _OPS[test.op](_test_expr(test.args[0], variables), _test_expr(test.args[1], variables))
