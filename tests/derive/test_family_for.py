"""`surco.family_for`: a complete Family from a Problem and a generator — every derived
method runs in the harness, stays in Ω, respects its budget; the exact method is the
enumerated optimum; SCIP is left out, with the reason, when f cannot be written for it."""
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

import surco
from surco.derive import DerivedFamily, family_for

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cases import enumerate_spec, knapsack_spec  # noqa: E402


def _knapsack_family(f=None, **kw):
    w = np.array([0.5, 0.4, 0.9, 0.3, 0.7, 0.6, 0.2])
    spec = knapsack_spec(w, 1.6)

    def objective(z, y):      # diminishing returns of the value, a penalty on the largest item
        return -jnp.sqrt(1.0 + y["v"] @ z) + 0.2 * jnp.max(z * y["v"]) + 0.05 * (z @ y["D"] @ z)

    def generate(count, seed=0):
        out = []
        for i in range(count):
            r = np.random.default_rng(seed + i)
            D = r.uniform(0, 1, (7, 7))
            out.append({"v": jnp.asarray(r.uniform(0.5, 3.0, 7), jnp.float32),
                        "D": jnp.asarray(D + D.T, jnp.float32)})
        return out
    problem = surco.Problem("knapsack-sqrt", spec, f or objective)
    return family_for(problem, generate, **kw), problem, spec


def test_derived_family_runs_every_method_in_omega():
    fam, problem, spec = _knapsack_family()
    assert isinstance(fam, DerivedFamily) and isinstance(fam, surco.Family)
    assert set(fam.baselines) == {"start", "local-search-steepest", "local-search-first",
                                  "annealing", "scip"}
    assert "UnitExchange" in fam.notes["neighbourhood"]
    assert fam.notes["scip"].startswith("included")
    ys = fam.generate(2, seed=3)
    budget = surco.Budget(seconds=30.0, evaluations=40)
    cmp = surco.compare(fam, ys, list(fam.baselines) + ["exact", "surco-zero"], budget=budget,
                        progress=False)
    P = enumerate_spec(spec)
    for i, y in enumerate(ys):
        opt = min(fam.evaluate(p, y) for p in P)
        assert cmp.run("exact", i).value == pytest.approx(opt, rel=1e-5, abs=1e-6)
        assert cmp.run("scip", i).value == pytest.approx(opt, rel=1e-5, abs=1e-6)
        for r in cmp.runs:
            if r.instance == i:
                assert r.ok, (r.method, r.error)
                assert spec.contains(r.x)
                assert r.value >= opt - 1e-6
                assert r.evaluations <= 40
    # evaluate is f; the batch agrees with one-by-one
    y = ys[0]
    np.testing.assert_allclose(fam.evaluate_batch(P[:5], y), [fam.evaluate(p, y) for p in P[:5]],
                               rtol=1e-6)
    assert fam.evaluate(P[0], y) == pytest.approx(float(problem.objective(P[0], y)), rel=1e-6)


def test_scip_is_left_out_with_the_reason():
    def f(z, y):
        return jnp.sum(jnp.where(z > 0.5, y["v"], 0.0)) ** 2
    fam, _, _ = _knapsack_family(f)
    assert "scip" not in fam.baselines and fam.exact is None
    assert fam.notes["scip"].startswith("omitted") and "'gt'" in fam.notes["scip"]
    fam2, _, _ = _knapsack_family(scip=False)
    assert "scip" not in fam2.baselines and fam2.notes["scip"] == "omitted: scip=False"


def test_family_fields_pass_through_and_bad_input():
    fam, _, _ = _knapsack_family(reference="annealing", f_rtol=0.1)
    assert fam.reference == "annealing" and fam.f_rtol == 0.1
    assert fam.zero_settings["estimator"] == "blackbox"
    with pytest.raises(TypeError, match="surco.Problem or a function"):
        family_for(3, None)
