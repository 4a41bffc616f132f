"""One shape for every family's instance generator (issue 27), over the families discovered in
`surco.problems.FAMILIES`: the package's module-level ``generate(count, seed=0, *, **size)``
is ``FAMILY.generate``; it is deterministic, ``generate(j, seed)`` is the first j instances
of ``generate(count, seed)``; and a bad count, seed or size raises a ValueError that names
the argument. A family that draws one instance from one seed calls that `make_instance`,
with the same size keywords."""
import importlib
import inspect
import re

import jax
import numpy as np
import pytest

import surco.problems

FAMILIES = list(surco.problems.FAMILIES)
#: issue 28: no public function takes more than 8 keyword parameters besides a configuration
MAX_KEYWORDS = 8


@pytest.fixture(scope="module", params=FAMILIES)
def module(request):
    return importlib.import_module(f"surco.problems.{request.param}")


def _same(a, b) -> bool:
    """Two instances (pytrees) equal exactly: the same structure (static data included) and
    leaves of equal dtype, shape and values."""
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    if ta != tb or len(la) != len(lb):
        return False
    return all(np.asarray(x).dtype == np.asarray(y).dtype
               and np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


def _size_keywords(fn) -> dict[str, inspect.Parameter]:
    return {p.name: p for p in inspect.signature(fn).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY}


def test_generate_is_the_family_generator_with_one_signature(module):
    assert module.generate is module.FAMILY.generate
    assert not hasattr(module, "generate_instances")          # no second name left behind
    params = list(inspect.signature(module.generate).parameters.values())
    count, seed, *size = params
    assert count.name == "count" and count.default is inspect.Parameter.empty
    assert count.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert seed.name == "seed" and seed.default == 0 and type(seed.default) is int
    assert seed.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert size and len(size) <= MAX_KEYWORDS
    for p in size:   # explicit keyword-only sizes with defaults, no opaque **kwargs
        assert p.kind is inspect.Parameter.KEYWORD_ONLY, p
        assert p.default is not inspect.Parameter.empty, p
    if hasattr(module, "make_instance"):
        first, *rest = inspect.signature(module.make_instance).parameters.values()
        assert first.name == "seed" and first.default is inspect.Parameter.empty
        assert [p.name for p in rest] == [p.name for p in size]
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in rest)


def test_generate_is_seeded_and_prefix_stable(module):
    gen = module.generate
    a = gen(3, seed=5)
    assert isinstance(a, list) and len(a) == 3
    assert all(_same(x, y) for x, y in zip(a, gen(3, seed=5)))
    assert all(_same(x, y) for x, y in zip(gen(2, seed=5), a[:2]))
    assert _same(gen(1, seed=5)[0], a[0])
    assert not _same(a[0], a[1]) and not _same(a[1], a[2])
    assert not _same(gen(1, seed=6)[0], a[0])                # another seed, another instance
    assert _same(gen(1)[0], gen(1, seed=0)[0])                  # seed defaults to 0


def _raises_naming(call, name: str) -> None:
    with pytest.raises(ValueError) as info:
        call()
    assert re.search(rf"\b{name}\b", str(info.value)), (name, str(info.value))


def test_generate_rejects_bad_count_seed_and_sizes(module):
    gen = module.generate
    for count in (0, -1, 1.5, True, "2", None):
        _raises_naming(lambda: gen(count), "count")
    for seed in (-1, 0.5, False, None):
        _raises_naming(lambda: gen(1, seed=seed), "seed")
    tried = []
    for name, p in _size_keywords(gen).items():
        if type(p.default) is int:
            bad = -1
        elif type(p.default) is str:
            bad = "no-such-value"
        else:   # floats, ranges, None: their valid sets differ by family
            continue
        _raises_naming(lambda: gen(1, **{name: bad}), name)
        tried.append(name)
    assert tried, f"{module.__name__}.generate has no int or str size keyword to check"
