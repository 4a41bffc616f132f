"""Problem families for SurCo: one subpackage each (``assignment``, ``sharding``,
``routing``, ``portfolio``, ``photonics``). Import them explicitly, e.g.
``from surco.problems import sharding``.

The contract every family meets (`surco.Family`; the conformance test
``tests/harness/test_conformance.py`` runs each family through the same checks). A family
package exports ``FAMILY = surco.Family(...)`` with:

* ``generate(count, seed=0, **size) -> list``: a seeded instance generator with small
  default sizes (and, where the family has real data, a loader next to it);
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
"""
