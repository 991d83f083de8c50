"""The layering rules of README's "Architecture", checked on the source (ast, no imports run).

- a private name (`_x`) is never imported or used from another module: share it under a public name;
- no product package imports the test suite, and nothing test-only ships in a product package;
- only `orchestration/`, the operators' commands `service/` (serve, doctor, status and backup read
  the Dagster instance) and the benchmark `bench/` (which drives the Dagster jobs) import Dagster;
- which package imports which is exactly README's table, and no two modules import each other
  (directly or round a loop);
- "does this table exist" and "which columns does it have" are asked in one place,
  `warehouse/catalog.py`.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = (
    "orchestration", "simulator", "ingest", "ml", "alerts", "notifications", "warehouse", "inbox",
    "bench", "service",
)  # fmt: skip
OURS = (*PACKAGES, "tests")
# bench/ belongs to the benchmark's own work in progress; these may only disappear.
KNOWN = {("bench.latency", "bench.run._link_day")}
KNOWN_CIRCLES = {frozenset({"bench.run", "bench.latency"})}


def _module(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = REPO / name.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


@cache
def _sources() -> dict[str, tuple[Path, ast.Module]]:
    return {
        _module(path): (path, ast.parse(path.read_text(), str(path)))
        for package in PACKAGES
        for path in sorted((REPO / package).rglob("*.py"))
    }


def _imports(tree: ast.Module) -> list[tuple[str, str | None, int]]:
    """(module, imported name or None, line) for every import of our own code, lazy ones too."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, None, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.module, a.name, node.lineno) for a in node.names]
    return [f for f in found if f[0].split(".")[0] in OURS]


def _target(module: str, name: str | None) -> str:
    """The module an import statement depends on (`from a import b` is a.b when b is a module)."""
    if name and _is_module(f"{module}.{name}"):
        return f"{module}.{name}"
    return module


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_private_name_is_imported_or_used_across_modules():
    crossings = set()
    for me, (path, tree) in _sources().items():
        bound: dict[str, str] = {}  # local name -> module it stands for
        for module, name, line in _imports(tree):
            if name is None:
                bound[module.split(".")[0]] = module.split(".")[0]
            elif _is_module(f"{module}.{name}"):
                bound[name] = f"{module}.{name}"
            elif _private(name) and module != me:
                crossings.add((me, f"{module}.{name}", f"{path.name}:{line}"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                chain, base = [], node.value
                while isinstance(base, ast.Attribute):
                    chain.insert(0, base.attr)
                    base = base.value
                if isinstance(base, ast.Name) and base.id in bound:
                    owner = ".".join([bound[base.id], *chain])
                    if owner != me and _is_module(owner):
                        crossings.add((me, f"{owner}.{node.attr}", f"{path.name}:{node.lineno}"))
    unexpected = sorted(c for c in crossings if (c[0], c[1]) not in KNOWN)
    assert not unexpected, f"private names used from another module: {unexpected}"


def test_no_product_module_imports_the_tests_and_none_is_test_only():
    offenders = [
        (me, line)
        for me, (_, tree) in _sources().items()
        for module, _, line in _imports(tree)
        if module.split(".")[0] == "tests"
    ]
    assert not offenders
    test_only = [
        me
        for me in _sources()
        if re.search(r"(^|\.)(testing|tests?|fixtures|conftest)(\.|$)", me)
        or re.search(r"(^|\.)test_", me)
    ]
    assert not test_only, f"test support inside a product package: {test_only}"


def test_only_orchestration_service_and_bench_import_dagster():
    importers = {
        me.split(".")[0]
        for me, (_, tree) in _sources().items()
        for node in ast.walk(tree)
        for module in (
            [a.name for a in node.names] if isinstance(node, ast.Import)
            else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        )  # fmt: skip
        if module.split(".")[0].startswith("dagster")
    }
    assert importers <= {"orchestration", "service", "bench"}, importers
    assert "orchestration" in importers


def _package_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {p: set() for p in PACKAGES}
    for me, (_, tree) in _sources().items():
        for module, _, _ in _imports(tree):
            if module.split(".")[0] != me.split(".")[0]:
                edges[me.split(".")[0]].add(module.split(".")[0])
    return edges


def _readme_edges() -> dict[str, set[str]]:
    """README's "what imports what" table: | `package/` | its job | `a/`, `b/` (or —) |."""
    text = (REPO / "README.md").read_text().split("## Architecture", 1)[1].split("\n## ", 1)[0]
    return {
        package: set(re.findall(r"`(\w+)/`", imports))
        for package, imports in re.findall(r"^\| `(\w+)/` \|.*\| ([^|]*) \|$", text, re.M)
    }


def test_package_imports_are_exactly_readme_architecture_table():
    assert _package_edges() == _readme_edges()


def test_no_import_circle():
    graph: dict[str, set[str]] = {}
    for me, (_, tree) in _sources().items():
        graph[me] = {
            _target(module, name)
            for module, name, _ in _imports(tree)
            if _target(module, name) in _sources() and _target(module, name) != me
        }
        # A package's __init__ is imported with any of its modules: not a circle of its own.
        graph[me] = {t for t in graph[me] if not me.startswith(t + ".")}
    circles = set()
    for start in graph:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    circles.add(frozenset(path))
                elif nxt not in path and len(path) < 6:
                    stack.append((nxt, [*path, nxt]))
    unexpected = circles - KNOWN_CIRCLES
    assert not unexpected, f"import circles: {[sorted(c) for c in unexpected]}"


def test_table_existence_is_asked_only_in_warehouse_catalog():
    asks = re.compile(
        r"(information_schema\.(tables|columns)|duckdb_(tables|views|columns)\(\)).*"
        r"\btable_name\s*=\s*[?$'\"]",  # compared with a value, not joined to another catalogue
        re.S | re.I,
    )
    offenders = [
        f"{path.relative_to(REPO)}:{node.lineno}"
        for me, (path, tree) in _sources().items()
        if me != "warehouse.catalog"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and asks.search(str(node.value))
    ]
    assert not offenders, f"use warehouse.catalog.table_exists / table_columns: {offenders}"


def test_libraries_open_no_warehouse_and_read_no_environment_outside_command_lines():
    """`duckdb.connect(path)` and `os.environ` only in a module with a `main` (a command line) or in
    the analyst connection helpers; an in-memory `duckdb.connect()` is fine anywhere."""
    allowed = {"warehouse.connect", "warehouse.analyst"}
    offenders = []
    for me, (path, tree) in _sources().items():
        if me.split(".")[0] in ("orchestration", "bench") or me in allowed:
            continue
        if any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body):
            continue
        for node in ast.walk(tree):
            call = isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            if call and node.func.attr == "connect" and ast.unparse(node.func.value) == "duckdb":
                if node.args or node.keywords:
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno} duckdb.connect")
            if isinstance(node, ast.Attribute) and ast.unparse(node) in ("os.environ", "os.getenv"):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} {ast.unparse(node)}")
    assert not offenders, offenders
