"""The file tree matches the import graph.

Walks the abstract syntax tree of every module in the installed package (``surco/`` as
``surco``, ``solvers/`` as ``surco.solvers``, ``problems/`` as ``surco.problems``, the mapping
of setup.py) and fails, listing every finding, on:

- a module longer than `MAX_LINES` lines;
- an import cycle. Every import counts, also one inside a function, a module ``__getattr__``
  or an ``if TYPE_CHECKING:`` block, and ``importlib.import_module("literal")``: a cycle
  hidden in a function is still a cycle in the design. ``from pkg import name`` is an edge
  to ``pkg.name`` when that is a module, and to ``pkg`` otherwise; ``import a.b`` is an edge
  to ``a.b``;
- a private name used across modules: ``from m import _name``, ``m._name`` through an imported
  module, or a private module (``pkg._mod``) imported from outside ``pkg``'s own tree. What two
  modules share is public in the module that defines it.

The checker is a handful of functions in this file; the synthetic tests at the end build small
trees in a temporary folder and check that each kind of finding is reported.
"""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

MAX_LINES = 450
REPO = Path(__file__).resolve().parent.parent
# Module name prefix -> folder, as setup.py maps them.
ROOTS = {"surco": REPO / "surco", "surco.solvers": REPO / "solvers",
         "surco.problems": REPO / "problems"}


@dataclasses.dataclass(frozen=True)
class Module:
    name: str
    path: Path
    root: str          # the ROOTS key the module was found under
    is_package: bool   # an __init__.py


@dataclasses.dataclass(frozen=True)
class Import:
    importer: str
    target: str        # a module of the tree
    line: int
    text: str          # the source line, for the report


def discover(roots: dict[str, Path]) -> dict[str, Module]:
    """Every module below the roots, by dotted name (folders starting with '.' or '_', and
    folders without __init__.py, are not packages, as in setup.py)."""
    mods: dict[str, Module] = {}
    for prefix, folder in roots.items():
        for init in sorted(folder.rglob("__init__.py")):
            pkg_dir = init.parent
            rel = pkg_dir.relative_to(folder).parts
            if any(p.startswith((".", "_")) for p in rel):
                continue
            if not all((folder.joinpath(*rel[:i]) / "__init__.py").exists()
                       for i in range(len(rel))):
                continue
            pkg = ".".join((prefix, *rel))
            mods[pkg] = Module(pkg, init, prefix, True)
            for f in sorted(pkg_dir.glob("*.py")):
                if f.name != "__init__.py":
                    name = pkg + "." + f.stem
                    mods[name] = Module(name, f, prefix, False)
    return mods


def _resolve_relative(mod: Module, level: int, name: str | None) -> str:
    base = mod.name.split(".")
    if not mod.is_package:
        base = base[:-1]
    if level > 1:
        base = base[:len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _module_privacy(mods: dict[str, Module], importer: Module, target: str) -> str | None:
    """Why importing module `target` from `importer` uses a private module, or None.

    A private module ``owner._mod`` belongs to the package ``owner``: modules of ``owner``'s
    own tree (same root folder, names below ``owner``) may import it, no other module may.
    """
    parts = target.split(".")
    for k in range(1, len(parts)):
        if _private(parts[k]):
            owner = ".".join(parts[:k])
            owner_root = mods[owner].root if owner in mods else None
            inside = importer.name == owner or importer.name.startswith(owner + ".")
            if not inside or importer.root != owner_root:
                return f"private module {'.'.join(parts[:k + 1])} imported from outside {owner}"
    return None


def analyse(mods: dict[str, Module]) -> tuple[list[Import], list[str]]:
    """(import edges between modules of the tree, private-name findings)."""
    edges: list[Import] = []
    private: list[str] = []
    for mod in mods.values():
        src = mod.path.read_text()
        lines = src.splitlines()
        tree = ast.parse(src, filename=str(mod.path))
        aliases: dict[str, str] = {}   # local name -> module of the tree (any scope)

        def add(target: str, node: ast.AST) -> None:
            if target in mods and target != mod.name:
                edges.append(Import(mod.name, target, node.lineno,
                                    lines[node.lineno - 1].strip()))
                why = _module_privacy(mods, mod, target)
                if why:
                    private.append(f"{mod.name}:{node.lineno}: {why}: "
                                   f"{lines[node.lineno - 1].strip()}")

        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    add(a.name, node)
                    if a.asname:
                        aliases[a.asname] = a.name
                    else:
                        aliases[a.name.split(".")[0]] = a.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom):
                base = (_resolve_relative(mod, node.level, node.module) if node.level
                        else node.module or "")
                for a in node.names:
                    full = f"{base}.{a.name}"
                    if full in mods:
                        add(full, node)
                        aliases[a.asname or a.name] = full
                    else:
                        add(base, node)
                        if (base in mods and base != mod.name and _private(a.name)):
                            private.append(f"{mod.name}:{node.lineno}: private name "
                                           f"{a.name} of {base}: "
                                           f"{lines[node.lineno - 1].strip()}")
            elif (isinstance(node, ast.Call) and node.args
                  and isinstance(node.args[0], ast.Constant)
                  and isinstance(node.args[0].value, str)
                  and ((isinstance(node.func, ast.Attribute)
                        and node.func.attr == "import_module")
                       or (isinstance(node.func, ast.Name)
                           and node.func.id in ("import_module", "__import__")))):
                add(node.args[0].value, node)
        # m._name through a name bound to a module of the tree
        inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or id(node) in inner:
                continue
            chain, cur = [], node
            while isinstance(cur, ast.Attribute):
                chain.append(cur.attr)
                cur = cur.value
            if not isinstance(cur, ast.Name) or cur.id not in aliases:
                continue
            chain.reverse()
            target = aliases[cur.id]
            for attr in chain:
                if f"{target}.{attr}" in mods:
                    target = f"{target}.{attr}"
                    continue
                if _private(attr) and target in mods and target != mod.name:
                    private.append(f"{mod.name}:{node.lineno}: private name {attr} of "
                                   f"{target}: {lines[node.lineno - 1].strip()}")
                break
            why = _module_privacy(mods, mod, target)
            if why and target != mod.name:
                private.append(f"{mod.name}:{node.lineno}: {why}: "
                               f"{lines[node.lineno - 1].strip()}")
    return edges, sorted(set(private))


def cycles(mods: dict[str, Module], edges: list[Import]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative), each
    as its modules followed by the imports between them."""
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for e in edges:
        graph[e.importer].add(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    comps: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        comps.append(sorted(comp))
    out = []
    for comp in sorted(comps):
        members = set(comp)
        lines = [f"    {e.importer}:{e.line}: {e.text}" for e in edges
                 if e.importer in members and e.target in members]
        out.append(comp + sorted(set(lines)))
    return out


def long_modules(mods: dict[str, Module], limit: int = MAX_LINES) -> list[str]:
    out = []
    for m in mods.values():
        n = len(m.path.read_text().splitlines())
        if n > limit:
            out.append(f"{m.name} ({m.path}): {n} lines > {limit}")
    return sorted(out)


def findings(roots: dict[str, Path], limit: int = MAX_LINES) -> dict[str, list[str]]:
    """Every finding, by kind ("long", "cycles", "private")."""
    mods = discover(roots)
    edges, private = analyse(mods)
    cyc = ["cycle {" + ", ".join(c for c in comp if not c.startswith("    ")) + "}\n"
           + "\n".join(c for c in comp if c.startswith("    ")) for comp in cycles(mods, edges)]
    return {"long": long_modules(mods, limit), "cycles": cyc, "private": private}


def _report(found: dict[str, list[str]]) -> str:
    parts = []
    titles = {"long": f"modules over {MAX_LINES} lines", "cycles": "import cycles",
              "private": "private names used across modules"}
    for kind, items in found.items():
        if items:
            parts.append(f"{len(items)} {titles[kind]}:\n" + "\n".join(items))
    return "\n\n".join(parts)


def test_tree_is_found():
    mods = discover(ROOTS)
    # The three roots are mapped: these are in the tree with the names the package uses.
    for name in ("surco", "surco.search", "surco.solvers", "surco.solvers.base",
                 "surco.problems", "surco.problems.portfolio", "surco.estimators.base"):
        assert name in mods, name
    assert len(mods) > 100


def test_no_long_modules_cycles_or_private_imports():
    report = _report(findings(ROOTS))
    if report:
        pytest.fail("\n" + report, pytrace=False)


# --- the checker itself: small synthetic trees -------------------------------------------

def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def test_checker_finds_a_cycle_inside_a_function(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg import b\n",
        "pkg/b.py": "def f():\n    from pkg.c import g\n    return g\n",
        "pkg/c.py": "import importlib\n\ndef g():\n    return importlib.import_module('pkg.a')\n",
        "pkg/d.py": "from pkg import a\n",   # imports into the cycle, not part of it
    })
    found = findings({"pkg": tmp_path / "pkg"})
    assert len(found["cycles"]) == 1
    head, *lines = found["cycles"][0].splitlines()
    assert head == "cycle {pkg.a, pkg.b, pkg.c}"
    assert [ln.split(": ", 1)[0].strip() for ln in lines] == ["pkg.a:1", "pkg.b:2", "pkg.c:4"]
    assert found["long"] == [] and found["private"] == []


def test_checker_finds_relative_and_mapped_cycles(tmp_path):
    # a second root mapped below the first, as solvers/ is surco.solvers
    _write(tmp_path, {
        "top/__init__.py": "from .x import X\n",
        "top/x.py": "X = 1\n\ndef f():\n    from top.sub import y\n",
        "other/__init__.py": "",
        "other/y.py": "from ..x import X\n",
    })
    found = findings({"top": tmp_path / "top", "top.sub": tmp_path / "other"})
    assert [c.splitlines()[0] for c in found["cycles"]] == ["cycle {top.sub.y, top.x}"]


def test_checker_finds_a_long_module(tmp_path):
    _write(tmp_path, {"pkg/__init__.py": "", "pkg/short.py": "x = 1\n" * 10,
                      "pkg/long.py": "x = 1\n" * 12})
    found = findings({"pkg": tmp_path / "pkg"}, limit=11)
    assert len(found["long"]) == 1 and found["long"][0].startswith("pkg.long (")
    assert found["long"][0].endswith("12 lines > 11")
    assert found["cycles"] == []


def test_checker_finds_private_names(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/_impl.py": "def _h():\n    pass\n\ndef h():\n    pass\n",
        "pkg/a.py": "from pkg._impl import h\n",                       # fine: inside pkg
        "pkg/b.py": "from pkg._impl import _h\n",                      # private name
        "pkg/c.py": "from pkg import _impl\n\n_impl._h()\n",            # private attribute
        "pkg/d.py": "_x = 1\n\ndef f():\n    return _x\n",              # own private: fine
        "pkg/sub/__init__.py": "from .._impl import h\n",              # fine: below pkg
        "other/__init__.py": "",
        "other/e.py": "import pkg._impl\n\npkg._impl.h()\n",            # private module
    })
    found = findings({"pkg": tmp_path / "pkg", "other": tmp_path / "other"})
    got = [f.split(": ", 2)[:2] for f in found["private"]]
    assert got == [["other.e:1", "private module pkg._impl imported from outside pkg"],
                   ["other.e:3", "private module pkg._impl imported from outside pkg"],
                   ["pkg.b:1", "private name _h of pkg._impl"],
                   ["pkg.c:3", "private name _h of pkg._impl"]], found["private"]
    assert found["cycles"] == []


def test_checker_private_module_of_a_mapped_root(tmp_path):
    # surco.problems.* (problems/) importing surco._engine (surco/) crosses roots: private.
    _write(tmp_path, {
        "core/__init__.py": "", "core/_engine.py": "def check():\n    pass\n",
        "core/user.py": "from core._engine import check\n",
        "fam/__init__.py": "", "fam/p.py": "from core._engine import check\n",
    })
    found = findings({"core": tmp_path / "core", "core.fam": tmp_path / "fam"})
    assert [f.split(": ", 1)[0] for f in found["private"]] == ["core.fam.p:1"]


if __name__ == "__main__":  # pragma: no cover - a readable listing: python tests/test_structure.py
    print(_report(findings(ROOTS)) or "clean")
