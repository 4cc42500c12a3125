"""House rules a reader relies on: no import cycle inside the package, files a reader can hold."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "python" / "sagestream"
# Lines of code (not blank, not comments; Rust's test modules apart) a file may hold.
MAX_LINES_OF_CODE = 500


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


# The compiled extension: it imports nothing of the package.
EXTENSION = "sagestream._core"


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules `name` imports when it runs (anywhere in it: a deferred import
    inside a function is a dependency too), leaving out imports for type checkers only."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            for alias in node.names:
                if f"{source}.{alias.name}" in known:
                    found.add(f"{source}.{alias.name}")
                elif source in known:
                    found.add(source)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    found.discard(name)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    trail: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        trail.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*trail[trail.index(nxt) :], nxt]
            if nxt not in state and (found := walk(nxt)):
                return found
        trail.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := walk(node)):
            return found
    return None


def test_the_package_imports_without_a_cycle() -> None:
    modules = _modules()
    known = {*modules, EXTENSION}
    graph = {name: _imports(name, path, known) for name, path in modules.items()}
    graph[EXTENSION] = set()
    assert graph["sagestream._client"] >= {"sagestream._call", "sagestream._jobs"}  # the walk sees them
    assert _cycle(graph) is None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def _lines_of_code(path: Path) -> int:
    lines = path.read_text().splitlines()
    comment = "//" if path.suffix == ".rs" else "#"
    if path.suffix == ".rs":
        # Unit tests sit at the end of a Rust file, after `#[cfg(test)]`.
        for i, line in enumerate(lines):
            if line.startswith("#[cfg(test)]"):
                lines = lines[:i]
                break
    return sum(1 for line in lines if line.strip() and not line.strip().startswith(comment))


SOURCES = sorted([*PACKAGE.rglob("*.py"), *(ROOT / "src").rglob("*.rs")])


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_file_is_longer_than_a_reader_can_hold(path: Path) -> None:
    assert _lines_of_code(path) <= MAX_LINES_OF_CODE


#: The folders built on the package (a user of it could have written them): they take the
#: public API, and the operation table of :mod:`sagestream.service`, never a private module.
OUTER = ("sagestream.cli", "sagestream.emulator", "sagestream.ray", "sagestream.integrations")


def _private_outside(name: str, folder: str) -> bool:
    """Whether module ``name`` is private to the package, seen from ``folder``: a part of its
    name starts with ``_``, and it is not a module of ``folder`` itself."""
    if name == folder or name.startswith(folder + "."):
        return False
    return any(part.startswith("_") for part in name.split("."))


def test_the_outer_folders_import_no_private_module() -> None:
    modules = _modules()
    known = {*modules, EXTENSION}
    found = {
        (name, imported)
        for name, path in modules.items()
        for folder in OUTER
        if name == folder or name.startswith(folder + ".")
        for imported in _imports(name, path, known)
        if _private_outside(imported, folder)
    }
    assert sorted(found) == []
    assert _private_outside("sagestream._core", "sagestream.emulator")  # the check sees them
    assert not _private_outside("sagestream.cli._common", "sagestream.cli")
