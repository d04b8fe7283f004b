"""The house rules of docs/architecture.md, checked on the source: arrows point down between rooms.

Each module belongs to a room: a folder of sftdata (ingest, rendering, tokenize, curate, formats,
synthesis, cli), a top-level package (schemas, templates, trainers), the plumbing (errors, items,
writers, provenance, storage) or a loose orchestration module (pipeline, api). A room may import only the
rooms listed for it below, counting imports inside functions too; modules never import each other in a
cycle at import time, and modules of one folder never do even through imports inside functions.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOP = {"sftdata": "sftdata", "schemas": "sftdata.schemas", "templates": "sftdata.templates",
       "trainers": "sftdata.trainers"}
FOLDERS = {"ingest", "rendering", "tokenize", "curate", "formats", "synthesis", "evaluation", "scale", "reviewing", "cli"}
PLUMBING = {"errors", "items", "writers", "provenance", "storage", "outcome"}
BELOW_LIBRARY = {"plumbing", "schemas", "templates"}
ALLOWED: dict[str, set[str]] = {
    "schemas": set(),
    "templates": set(),
    "package": set(),  # sftdata/__init__.py: lazy names only (importlib strings), no imports
    "plumbing": {"schemas", "package"},  # provenance reads sftdata.__version__
    "tokenize": {"plumbing"},
    "dequantize": {"plumbing", "tokenize"},
    "ingest": {"plumbing", "schemas"},
    "rendering": {"ingest", "tokenize", *BELOW_LIBRARY},
    "formats": {"ingest", "rendering", "package", *BELOW_LIBRARY},
    "curate": {"ingest", "rendering", "tokenize", *BELOW_LIBRARY},
    "pipeline": {"ingest", "rendering", "formats", *BELOW_LIBRARY},
    "synthesis": {"ingest", "rendering", "tokenize", "curate", "dequantize", "package", *BELOW_LIBRARY},
    "trainers": {"ingest", "rendering", "tokenize", "curate", "dequantize", "package", *BELOW_LIBRARY},
    "scale": {"ingest", "rendering", "tokenize", "formats", "pipeline", "curate", *BELOW_LIBRARY},
    "evaluation": {"ingest", "rendering", "tokenize", "curate", "synthesis", "trainers", "dequantize", "package",
                   *BELOW_LIBRARY},
    "reviewing": {"ingest", "rendering", "tokenize", "curate", *BELOW_LIBRARY},
    "api": {"ingest", "rendering", "tokenize", "curate", "formats", "pipeline", "synthesis", "trainers", "evaluation", "scale",
            "reviewing", "dequantize", *BELOW_LIBRARY},
    "cli": {"api", "dequantize", "ingest", "rendering", "tokenize", "curate", "formats", "pipeline", "synthesis", "trainers", "evaluation",
            "reviewing", "package", *BELOW_LIBRARY},
}


def module_name(path: Path) -> tuple[str, bool]:
    rel = path.relative_to(REPO).with_suffix("")
    parts = [*TOP[rel.parts[0]].split("."), *rel.parts[1:]]
    is_package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_package else parts), is_package


def room(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "package"
    if parts[1] in ("schemas", "templates", "trainers") or parts[1] in FOLDERS:
        return parts[1]
    return "plumbing" if parts[1] in PLUMBING else parts[1]


def imports(path: Path) -> list[tuple[str, bool]]:
    """(absolute target module, imported at import time) for each import of sftdata's own."""
    name, is_package = module_name(path)
    package = name if is_package else name.rsplit(".", 1)[0]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, runtime: bool, typing_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            at_runtime = runtime and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            for_typing = typing_only
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                at_runtime, for_typing = False, True
            targets: list[str] = []
            if isinstance(child, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - child.level + 1] if child.level else []
                target = ".".join(base + ([child.module] if child.module else []))
                if target.startswith("sftdata"):
                    for alias in child.names:  # `from . import readers` imports a module, not a name
                        sub = f"{target}.{alias.name}"
                        targets.append(sub if is_module(sub) else target)
            elif isinstance(child, ast.Import):
                targets.extend(a.name for a in child.names if a.name.startswith("sftdata"))
            found.extend((t, at_runtime) for t in targets)
            (TYPING if for_typing else EXECUTED).update((name, t) for t in targets)
            visit(child, at_runtime, for_typing)

    visit(ast.parse(path.read_text(encoding="utf-8")), True, False)
    return found


# (module, target) pairs imported under `if TYPE_CHECKING:` and those imported where the code runs (at import time
# or in a function); a pair only ever imported for type checkers never executes, so it is never part of an import
# cycle (the room rules still count it). Filled by imports().
TYPING: set[tuple[str, str]] = set()
EXECUTED: set[tuple[str, str]] = set()


MODULES = {module_name(p)[0]: p for top in TOP for p in (REPO / top).rglob("*.py")}


def is_module(name: str) -> bool:
    return name in MODULES


def edges() -> list[tuple[str, str, bool]]:
    return [(name, target, runtime) for name, path in sorted(MODULES.items()) for target, runtime in imports(path)]


def room_violations(found: list[tuple[str, str, bool]]) -> list[str]:
    bad = []
    for source, target, _ in found:
        a, b = room(source), room(target)
        if a != b and b not in ALLOWED[a]:
            bad.append(f"{source} ({a}) imports {target} ({b})")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first search (one per back edge)."""
    found, state, stack = [], {}, []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node)
    return found


def test_every_module_has_a_room():
    assert {room(m) for m in MODULES} <= set(ALLOWED), {room(m) for m in MODULES} - set(ALLOWED)


def test_arrows_point_down_between_rooms():
    assert room_violations(edges()) == []


def test_allowed_arrows_themselves_form_no_cycle():
    assert cycles(ALLOWED) == []


def test_no_cycle_between_rooms_even_through_imports_inside_functions():
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target, _ in edges():
        if room(source) != room(target):
            graph[room(source)].add(room(target))
    assert cycles(graph) == []


def module_graph(found: list[tuple[str, str, bool]], packages: set[str], *, import_time_only: bool,
                 same_folder: bool) -> dict[str, set[str]]:
    """Module → modules it imports. A package's __init__.py (named in `packages`) is left out as an importer,
    as the import-time check has always left it out: it runs before any module of its folder can, and imports
    them only to re-export their names (sftdata.synthesis re-exports run's synth), so its arrows to them are not
    two modules leaning on each other; a module that imports its package back is a cross-folder arrow,
    which the room rules judge."""
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target, runtime in found:
        if target == source or source in packages or (import_time_only and not runtime):
            continue
        if (source, target) in TYPING and (source, target) not in EXECUTED:  # for type checkers only
            continue
        if same_folder and source.rsplit(".", 1)[0] != target.rsplit(".", 1)[0]:
            continue
        graph[source].add(target)
    return graph


PACKAGES = {name for name, path in MODULES.items() if path.name == "__init__.py"}


def test_no_import_cycle_between_modules_at_import_time():
    assert cycles(module_graph(edges(), PACKAGES, import_time_only=True, same_folder=False)) == []


def test_no_import_cycle_between_modules_of_a_folder_even_through_imports_inside_functions():
    """A cycle hidden in a function (`from .b import x` inside a def of a, while b imports a) still ties the two
    modules together: neither can be read, tested or moved without the other. The piece both need belongs in a
    module of its own below them."""
    assert cycles(module_graph(edges(), PACKAGES, import_time_only=False, same_folder=True)) == []


def test_the_folder_check_catches_a_cycle_made_only_by_imports_inside_functions():
    # a imports b at import time; b imports c and c imports a only inside functions
    found = [("sftdata.x.a", "sftdata.x.b", True), ("sftdata.x.b", "sftdata.x.c", False),
             ("sftdata.x.c", "sftdata.x.a", False), ("sftdata.x.a", "sftdata.y.d", False),
             ("sftdata.y.d", "sftdata.x.a", False)]  # a cross-folder pair: the room rules' business
    assert cycles(module_graph(found, set(), import_time_only=False, same_folder=True)) == [
        ["sftdata.x.a", "sftdata.x.b", "sftdata.x.c", "sftdata.x.a"]]
    assert cycles(module_graph(found, set(), import_time_only=True, same_folder=True)) == []  # what it adds
    # a package's __init__ importing its own modules is no cycle with them, as in the import-time check
    assert cycles(module_graph([("sftdata.x", "sftdata.x.a", True), ("sftdata.x.a", "sftdata.x", False)],
                               {"sftdata.x"}, import_time_only=False, same_folder=True)) == []


def test_nothing_imports_the_cli_and_schemas_import_nothing_of_ours():
    found = edges()
    assert [s for s, t, _ in found if room(t) == "cli" and room(s) != "cli"] == []
    assert [t for s, t, _ in found if room(s) == "schemas" and room(t) != "schemas"] == []


def test_the_package_top_stays_small_and_each_folder_says_what_it_may_import():
    loose = [p.name for p in (REPO / "sftdata").glob("*.py") if p.name != "__init__.py"]
    assert len(loose) <= 12, loose
    for folder in FOLDERS - {"cli"}:
        doc = ast.get_docstring(ast.parse((REPO / "sftdata" / folder / "__init__.py").read_text(encoding="utf-8")))
        assert doc and "May import" in doc, folder


@pytest.mark.parametrize("source,target", [
    ("sftdata.ingest.readers", "sftdata.curate.stats"),  # ingest sits below curation
    ("sftdata.tokenize.encode", "sftdata.rendering.templating"),  # tokenize sits below rendering
    ("sftdata.schemas.records", "sftdata.errors"),  # schemas import nothing of ours
    ("sftdata.curate.audit", "sftdata.cli.common"),  # nothing imports the CLI
])
def test_the_checks_catch_a_wrong_arrow_and_a_cycle(source, target):
    assert room_violations([(source, target, True)])
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
