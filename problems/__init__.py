"""Problem families for SurCo: one subpackage each (``assignment``, ``sharding``,
``routing``, ``portfolio``, ``photonics``). Import them explicitly, e.g.
``from surco.problems import sharding``.

The contract every family meets (`surco.Family`; the conformance test
``tests/harness/test_conformance.py`` runs each family through the same checks). A family
package exports ``FAMILY = surco.Family(...)`` with:

* ``generate(count, seed=0, **size) -> list``: the package's module-level ``generate``, a
  seeded instance generator whose sizes and regimes are keyword-only arguments with small
  defaults, validated (a ValueError names the bad argument); deterministic, and
  ``generate(j, seed)`` is the first j instances of ``generate(count, seed)``. Where a
  family draws one instance from one seed, that function is ``make_instance(seed, **size)``
  (routing, portfolio, photonics; there ``generate`` uses seeds seed, seed + 1, … in
  routing and photonics). Where the family has real data, a loader sits next to it;
* ``problem(instance) -> surco.Problem``: Ω (a `LinearSpec` or an oracle), the JAX
  objective f(x, instance) and the features for SurCo-prior (the family's ``make_problem``);
* ``evaluate(x, instance) -> float``: the true cost, lower is better (a profiler, a
  simulator, or f itself), and optionally ``evaluate_batch(X, instance)`` for many x;
* ``violations_fn(x, instance) -> list[str]`` when Ω is not a `LinearSpec` with a
  solver-free membership check (`Family.violations` is the check the harness applies);
* ``baselines``: name -> ``method(instance, meter) -> x``: the field's own heuristics and
  the strongest non-learned methods a practitioner would use (local search, simulated
  annealing, SCIP on the true objective with a time limit), each evaluating the true cost
  only through its `surco.budget.Meter`;
* ``exact``: a method that proves optimality on small instances (brute force, SCIP), or None;
* ``zero_settings`` (+ ``zero_settings_note``): SurCo-zero's settings for the family, chosen
  on train instances only; ``f_rtol`` / ``f_monotone``: how f relates to ``evaluate``;
  ``reference``: the default reference method of paired comparisons.

Every method's result is a `surco.Run` of the comparison harness (`surco.compare`).

``FAMILIES`` names every family package found here (`discover_families`: a subpackage whose
``__init__.py`` binds ``FAMILY``), so a new family dropped into ``problems/`` is run by the
conformance test without editing it. `surco.family_for` builds a whole ``FAMILY`` from a
`surco.Problem` and a generator.
"""
import ast
import pkgutil
from pathlib import Path
from typing import Iterable

__all__ = ["FAMILIES", "discover_families"]


def _binds_family(init: Path) -> bool:
    """Whether a package's ``__init__.py`` binds the name FAMILY at top level (by an
    assignment or an import), read without importing the package."""
    try:
        tree = ast.parse(init.read_text(encoding="utf-8"), str(init))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return False
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if any((a.asname or a.name) == "FAMILY" for a in node.names):
                return True
        elif isinstance(node, ast.Assign):
            if any(isinstance(t, ast.Name) and t.id == "FAMILY" for t in node.targets):
                return True
        elif isinstance(node, ast.AnnAssign):
            if isinstance(node.target, ast.Name) and node.target.id == "FAMILY":
                return True
    return False


def discover_families(paths: Iterable[str] | None = None) -> tuple[str, ...]:
    """Names (sorted) of the family packages under ``paths`` (default: this package's
    ``__path__``): subpackages, not starting with "_", whose ``__init__.py`` binds
    ``FAMILY``. Nothing is imported (photonics' extra need not be installed to list it)."""
    found = set()
    for info in pkgutil.iter_modules(list(__path__ if paths is None else paths)):
        root = getattr(info.module_finder, "path", None)
        if info.ispkg and not info.name.startswith("_") and root is not None \
                and _binds_family(Path(root) / info.name / "__init__.py"):
            found.add(info.name)
    return tuple(sorted(found))


#: The family packages of the project (see `discover_families`).
FAMILIES = discover_families()
