"""House rules a reader relies on: no import cycle inside the package, files a reader can hold."""

from __future__ import annotations

import ast
import re
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


# --- Rust: the modules of src/ import without a cycle ---------------------------------------------
# A file's dependencies are the files whose names it takes: `use crate::…` / `super::…` /
# `self::…` trees, and `crate::a::b` paths written in code, each followed to the file that defines
# the name (through re-exports). A module that re-exports its own submodule's item
# (`pub use body::ResponseBody` in transport/mod.rs) is its facade, not its dependant, unless its
# own code uses the name too. `mod x;` declarations and `#[cfg(test)]` modules are left out.

SRC = ROOT / "src"

_RUST_LITERAL = re.compile(r"""b?r(#*)".*?"\1|b?"(?:\\.|[^"\\])*"|b?'(?:\\[^']{1,10}|[^\\'])'""", re.S)
_RUST_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
_RUST_TEST_MODULE = re.compile(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{")
_RUST_TOKEN = re.compile(
    r"(?P<mod>\bmod\s+(?P<name>\w+)\s*\{)"
    r"|(?P<use>\b(?P<public>pub(?:\s*\([^)]*\))?\s+)?use\s+(?P<tree>[^;]*);)"
    r"|(?P<path>\b\w+(?:\s*::\s*\w+)+)"
    r"|(?P<open>\{)|(?P<close>\})"
)


def _rust_code(text: str) -> str:
    """`text` without comments, literals (a string could hold `//` or a brace) and test modules."""

    def blank(match: re.Match[str]) -> str:
        return '""' if match.group(0).startswith(('"', "b", "r")) else " "

    text = re.sub(f"{_RUST_COMMENT.pattern}|{_RUST_LITERAL.pattern}", blank, text, flags=re.S)
    while found := _RUST_TEST_MODULE.search(text):
        depth, end = 1, found.end()
        while end < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            end += 1
        text = text[: found.start()] + text[end:]
    return text


def _use_paths(tree: str) -> list[list[str]]:
    """The paths a `use` tree names: `a::{b::C, d as e, self}` names a::b::C, a::d and a."""
    tokens = re.findall(r"\w+|::|[{},*]", tree)
    at = 0

    def parse(prefix: list[str]) -> list[list[str]]:
        nonlocal at
        segments: list[str] = []
        while at < len(tokens):
            token = tokens[at]
            at += 1
            if token == "{":
                paths = []
                while at < len(tokens) and tokens[at] != "}":
                    paths += parse(prefix + segments)
                    at += tokens[at : at + 1] == [","]
                at += 1
                return paths
            if token != "*" and not (token == "self" and not segments):
                segments.append(token)
            if tokens[at : at + 1] == ["::"]:
                at += 1
                continue
            if tokens[at : at + 1] == ["as"]:
                at += 2
            break
        return [prefix + segments]

    return parse([])


Module = tuple[str, ...]


def _rust_module_graph(src: Path) -> dict[str, set[str]]:
    """Each .rs file of `src` (its path below `src`) → the files it takes names from."""
    files: dict[Module, Path] = {}
    for path in sorted(src.rglob("*.rs")):
        parts = path.relative_to(src).with_suffix("").parts
        files[parts[:-1] if parts[-1] in ("lib", "main", "mod") else parts] = path
    modules: dict[Module, Path] = dict(files)  # inline `mod x { … }` modules too, to their file
    children: dict[Module, set[str]] = {}
    facade: dict[Module, dict[str, list[str]]] = {}  # name → the path it re-exports
    named: dict[Path, list[tuple[Module, list[str]]]] = {}  # paths, and the module they sit in
    for module, path in files.items():
        code = _rust_code(path.read_text())
        children[module] = set(re.findall(r"\bmod\s+(\w+)\s*;", code))
        plain = _RUST_TOKEN.sub(lambda m: " " if m["use"] else m.group(0), code)  # `use` left out
        inline = [(module, 0)]  # the modules open here, and the brace depth each closes at
        depth = 0
        found = named.setdefault(path, [])
        for token in _RUST_TOKEN.finditer(code):
            here = inline[-1][0]
            if token["mod"]:
                depth += 1
                inner = (*here, token["name"])
                inline.append((inner, depth))
                modules[inner] = path
                children.setdefault(here, set()).add(token["name"])
            elif token["open"]:
                depth += 1
            elif token["close"]:
                if len(inline) > 1 and inline[-1][1] == depth:
                    inline.pop()
                depth -= 1
            elif token["use"]:
                for used in _use_paths(token["tree"]):
                    submodule = used[0] in children.get(here, set())
                    if token["public"] and submodule and not re.search(rf"\b{used[-1]}\b", plain):
                        facade.setdefault(here, {})[used[-1]] = [*here, *used]
                    else:
                        found.append((here, used))
            elif token["path"]:
                found.append((here, re.split(r"\s*::\s*", token["path"])))

    def absolute(here: Module, path: list[str]) -> list[str] | None:
        if path[0] == "crate":
            return path[1:]
        if path[0] == "self":
            return [*here, *path[1:]]
        if path[0] == "super":
            base = list(here)
            while path and path[0] == "super":
                base, path = base[:-1], path[1:]
            return base + path
        if path[0] in children.get(here, set()):
            return [*here, *path]
        return None  # another crate's (std, pyo3, …), or a name of this module's own

    def defined_in(path: list[str], hops: int = 0) -> Path:
        cut = max(n for n in range(len(path) + 1) if tuple(path[:n]) in modules or n == 0)
        module = tuple(path[:cut])
        name = path[cut] if cut < len(path) else None
        if name in facade.get(module, {}) and hops < 16:
            return defined_in(facade[module][name] + path[cut + 1 :], hops + 1)
        return modules.get(module, src / "lib.rs")

    def name(path: Path) -> str:
        return path.relative_to(src).as_posix()

    graph: dict[str, set[str]] = {}
    for path, found in named.items():
        targets = {defined_in(full) for here, used in found if (full := absolute(here, used))}
        graph[name(path)] = {name(target) for target in targets} - {name(path)}
    return graph


def test_the_rust_modules_import_without_a_cycle() -> None:
    graph = _rust_module_graph(SRC)
    # The walk sees `use` trees, `super::`, paths in code, and follows re-exports to their file.
    assert graph["stream.rs"] >= {"sagemaker.rs", "runtime.rs"}
    assert graph["pump.rs"] >= {"frame.rs", "sagemaker.rs", "stream.rs", "transport/body.rs"}
    assert graph["transport/h2.rs"] >= {"transport/mod.rs", "transport/connect.rs"}
    assert _cycle(graph) is None


def test_the_rust_module_walk_finds_a_cycle(tmp_path: Path) -> None:
    (tmp_path / "net").mkdir()
    (tmp_path / "lib.rs").write_text("pub mod a;\npub mod b;\npub mod net;\n")
    (tmp_path / "a.rs").write_text(
        "//! `crate::b` in a comment is no use.\nuse crate::net::Wire;\n"
        '#[cfg(test)]\nmod tests {\n    use crate::b::B;\n    const S: &str = "}";\n}\n'
    )
    (tmp_path / "b.rs").write_text("pub struct B;\nfn f() { let _ = crate::a::A; }\n")
    (tmp_path / "net" / "mod.rs").write_text("mod wire;\npub use wire::Wire;\npub struct Shared;\n")
    (tmp_path / "net" / "wire.rs").write_text("use super::{Shared, super::b::B};\npub struct Wire;\n")
    graph = _rust_module_graph(tmp_path)
    assert graph == {
        "lib.rs": set(),
        "a.rs": {"net/wire.rs"},
        "b.rs": {"a.rs"},
        "net/mod.rs": set(),
        "net/wire.rs": {"net/mod.rs", "b.rs"},
    }
    assert _cycle(graph) == ["a.rs", "net/wire.rs", "b.rs", "a.rs"]


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
