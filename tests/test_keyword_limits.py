"""No public function of the package takes more than 8 keyword parameters besides its
configuration object: a longer list of options is a frozen, validated configuration
(`surco.config.Config`: `surco.ZeroConfig`, `surco.lns.LNSConfig`, ...) passed as one
argument, with its fields also accepted as ``**settings`` (as `surco.zero` does).

A *keyword parameter* is one a caller passes by name: keyword-only, or positional with a
default. ``**settings`` is not one (its names are the configuration's fields, checked by
`surco.config.settings_of`), nor is a parameter named ``config`` or annotated with a
``...Config`` type.

The walk imports every module of the package (`surco`, with `surco.problems` and
`surco.solvers`) and inspects the functions each defines: module-level functions and the
methods of its classes, public names only, in modules with no private path component."""
import importlib
import inspect
import pkgutil
import re

import pytest

import surco

LIMIT = 8
_CONFIG = re.compile(r"\b\w*Config\b")


def keyword_parameters(func) -> list[str]:
    """The keyword parameters of ``func`` that count towards the limit."""
    out = []
    for p in inspect.signature(func).parameters.values():
        by_name = p.kind is p.KEYWORD_ONLY or (p.kind is p.POSITIONAL_OR_KEYWORD
                                               and p.default is not p.empty)
        if not by_name or p.name == "config":
            continue
        if p.annotation is not p.empty and _CONFIG.search(str(p.annotation)):
            continue
        out.append(p.name)
    return out


#: the package's roots: `surco.problems` and `surco.solvers` live in folders of their own
ROOTS = ("surco", "surco.problems", "surco.solvers")


def _public_modules() -> list[str]:
    names = set(ROOTS)
    for root in ROOTS:
        package = importlib.import_module(root)
        names.update(m.name for m in pkgutil.walk_packages(package.__path__, f"{root}."))
    return sorted(n for n in names if not any(part.startswith("_") for part in n.split(".")))


def _functions(module):
    """``(qualified name, function)`` for the public functions and methods ``module``
    defines (not those it imports)."""
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(obj):
            yield f"{module.__name__}.{name}", obj
        elif inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if attr.startswith("_"):
                    continue
                member = getattr(member, "__func__", member)   # classmethod, staticmethod
                if inspect.isfunction(member) and member.__module__ == module.__name__:
                    yield f"{module.__name__}.{name}.{attr}", member


def offenders() -> dict[str, list[str]]:
    found = {}
    for mod_name in _public_modules():
        module = importlib.import_module(mod_name)
        for qualname, func in _functions(module):
            kws = keyword_parameters(func)
            if len(kws) > LIMIT:
                found[qualname] = kws
    return found


def test_counting_rule():
    def f(a, b=1, /, c=2, *args, d, e=3, config=None, z: "surco.ZeroConfig | None" = None,
          **settings):
        pass
    assert keyword_parameters(f) == ["c", "d", "e"]
    assert keyword_parameters(surco.zero) == []
    assert len(keyword_parameters(lambda *, a, b, c, d, e, f, g, h, i: 0)) == 9


def test_walk_sees_the_package():
    names = _public_modules()
    for expected in ("surco.config", "surco.lns", "surco.lns_core", "surco.problems.photonics.methods",
                     "surco.problems.sharding.measured.training", "surco.solvers"):
        assert expected in names
    funcs = dict(f for m in ("surco.lns_core", "surco.config")
                 for f in _functions(importlib.import_module(m)))
    assert "surco.lns_core.lns" in funcs and "surco.config.Config.replace" in funcs


def test_no_public_function_takes_more_than_8_keyword_parameters():
    found = offenders()
    report = "\n".join(f"  {name}: {len(kws)} keyword parameters ({', '.join(kws)})"
                       for name, kws in sorted(found.items()))
    print(f"functions over {LIMIT} keyword parameters:\n{report or '  none'}")
    if found:
        pytest.fail(f"{len(found)} public function(s) take more than {LIMIT} keyword "
                    f"parameters besides a configuration; give them a frozen configuration "
                    f"(surco.config.Config) and **settings, as surco.zero:\n{report}")
