"""`bench.families_evals` on one tiny instance per family with a tiny evaluation budget: the
JSON's fields, the ratio and the sign test recomputed from the rows, the map of every
comparison; and `bench._report.Report.add_map`."""
import dataclasses
import json
import math

import numpy as np
import pytest

from bench import families_evals as FE
from bench._report import Report

#: tiny versions of the bench's settings (same methods, small instances; LANCER, the slowest
#: to compile, on assignment only); photonics' device cannot shrink: 1 instance, 2 simulations
TINY = {
    "assignment": (dataclasses.replace(FE.SETTINGS["assignment"], size=dict(n=5, m=2)), True),
    "portfolio": (dataclasses.replace(FE.SETTINGS["portfolio"], size=dict(n=12)), False),
    "routing": (dataclasses.replace(FE.SETTINGS["routing"],
                                    size=dict(n=3, regime="risk", q=-1.0)), False),
    # LANCER's photonics setting is built (and checked) in test_lancer_setting_per_family;
    # running it here would compile its landscape fit for a 40 x 40 design
    "photonics": (FE.SETTINGS["photonics"], False),
    "photonics-mode-converter": (FE.SETTINGS["photonics-mode-converter"], False),
}


@pytest.mark.parametrize("name", list(FE.SETTINGS))
def test_lancer_setting_per_family(name):
    """Every setting may run LANCER (--lancer), with its family's chosen settings: building
    the method checks them (an unknown or bad setting raises)."""
    import importlib

    from surco.lancer.zero import SETTINGS
    setting = FE.SETTINGS[name]
    fam = importlib.import_module(f"surco.problems.{setting.family}").FAMILY
    assert setting.lancer
    assert list(FE.surco_family(fam, setting, lancer=True))[:2] == ["surco-zero", "lancer"]
    assert "lancer" not in FE.surco_family(fam, setting, lancer=False)
    if setting.family in ("photonics", "sharding"):
        assert setting.family in SETTINGS


def _binomial_p(wins: int, losses: int) -> float:
    """Two-sided exact sign test, written out: sum of the Binomial(n, 1/2) probabilities
    no larger than that of the observed count."""
    n = wins + losses
    if n == 0:
        return 1.0
    pk = [math.comb(n, k) / 2 ** n for k in range(n + 1)]
    return min(1.0, sum(p for p in pk if p <= pk[wins] * (1 + 1e-9)))


def test_relative_and_sign_test_values():
    assert FE.relative(0.9, 1.0) == pytest.approx(0.9)
    assert FE.relative(-2.2, -2.0) == pytest.approx(0.9)       # negative costs: lower is better
    assert FE.relative(-1.8, -2.0) == pytest.approx(1.1)
    assert FE.relative(0.0, 0.0) == 1.0 and FE.relative(0.5, 0.0) == math.inf
    assert math.isnan(FE.relative(math.nan, 1.0))
    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, np.nan])
    b = np.array([2.0, 3.0, 3.0, 5.0, 6.0, 5.0, 1.0])
    st = FE.paired_sign_test(a, b)
    assert (st["n"], st["wins"], st["ties"], st["losses"]) == (6, 4, 1, 1)
    assert st["p_sign"] == pytest.approx(_binomial_p(4, 1)) == pytest.approx(0.375)


@pytest.mark.parametrize("name", list(TINY))
def test_families_evals_tiny(tmp_path, name):
    setting, lancer = TINY[name]
    photonics = setting.family == "photonics"
    budgets = (2,) if photonics else (3, 6)
    n = 1 if photonics else 2
    rep = Report("families-evals", True, path=tmp_path / "out.json")
    out = FE.measure(rep, setting, n, budgets=budgets, progress=False, lancer=lancer)
    rep.finish(quiet=True)
    data = json.loads((tmp_path / "out.json").read_text())
    fam = data["families"][name]
    assert fam["budgets"].keys() == out["budgets"].keys() == {str(E) for E in budgets}
    methods = ["surco-zero", *(["lancer"] if lancer and setting.lancer else []),
               *setting.searches]
    if name == "portfolio":
        methods.append("surco-zero+search")
    assert sorted(fam["surco_family"] + fam["searches"]) == sorted(methods)
    assert math.isnan(fam["f_concordance"]) or 0.0 <= fam["f_concordance"] <= 1.0
    scip = [setting.scip] if setting.scip else []
    for E in budgets:
        rows = [r for r in data["rows"] if r["budget"] == f"{E} evaluations"]
        assert sorted(r["method"] for r in rows) == sorted(methods + scip)
        by = {r["method"]: r for r in rows}
        for m in methods:                           # metered: within the budget
            assert by[m]["evaluations"] <= E and by[m]["failed"] == 0
            assert by[m]["metered"]
        for m in scip:
            assert not by[m]["metered"]
        b = fam["budgets"][str(E)]
        best, search = b["best_surco_family"], b["best_search"]
        assert fam["lancer_in_target"] == ("lancer" in fam["surco_family"])   # metered
        assert best == min(fam["surco_family"], key=lambda m: by[m]["value"])
        assert search == min(setting.searches, key=lambda m: by[m]["value"])
        s = by[search]["value"]
        mine = by[best]["value"]
        want = (1 + (mine - s) / abs(s) if s != 0 else
                1.0 if mine == 0 else math.inf)
        assert b["ratio"] == pytest.approx(want)
        # every row is paired with the best search: the best SurCo's row has the same test
        assert (by[best]["wins"], by[best]["ties"], by[best]["losses"]) == (
            b["wins"], b["ties"], b["losses"])
        assert b["wins"] + b["ties"] + b["losses"] == b["n"] == n
        assert b["p_sign"] == pytest.approx(_binomial_p(b["wins"], b["losses"]))
        m = data["maps"][f"{name} {setting.tag}, {E} evaluations"]
        assert set(m) >= {"costs", "budgets", "winners", "means", "crossover"}
        assert set(m["means"]) == set(methods) | set(scip)
    assert {r["family"] for r in data["rows"]} == {name}    # the setting's name, not family
    t = [t for t in data["targets"] if t["name"].startswith(name)]
    assert t == []                                   # the target is at 100 evaluations only


def test_add_map_stores_each_comparison_once(tmp_path):
    import surco
    from surco.budget import Budget
    b = Budget(evaluations=10)
    runs = [surco.Run("annealing", 0, np.zeros(1), 2.0, 0.01, 10, "ok", None,
                      [(1, 0.001, 5.0), (10, 0.01, 2.0)], b),
            surco.Run("surco-zero", 0, np.zeros(1), 1.0, 1.0, 3, "ok", None,
                      [(1, 0.5, 3.0), (3, 1.0, 1.0)], b)]
    cmp = surco.Comparison("toy", runs, ["annealing", "surco-zero"], 1)
    rep = Report("toy", True, path=tmp_path / "toy.json")
    js = rep.add_map(cmp, "10 evaluations", costs=(0.0, 1.0), budgets=(0.5, 20.0))
    # at 1 s per evaluation and 20 s: annealing took 10.01 s for 2.0, SurCo 4 s for 1.0
    assert js["winners"][1][1] == "surco-zero"
    with pytest.raises(ValueError, match="already stored"):
        rep.add_map(cmp, "10 evaluations")
    with pytest.raises(TypeError, match="surco.Comparison"):
        rep.add_map(object(), "x")
    rep.finish(quiet=True)
    assert json.loads((tmp_path / "toy.json").read_text())["maps"]["10 evaluations"] == js


def test_f_concordance_counts_pairs_ordered_like_the_true_cost():
    import itertools

    import surco
    from surco.problems import assignment as A
    fam = A.FAMILY
    y = fam.generate(1, seed=3, n=3, m=2)[0]
    xs = [np.eye(2)[list(c)] for c in itertools.product(range(2), repeat=3)]   # all 8 plans
    runs = [surco.Run(f"m{k}", 0, x, 0.0, 0.0, 1, "ok", None, [], surco.Budget())
            for k, x in enumerate(xs)]
    runs.append(surco.Run("other", 1, xs[0], 0.0, 0.0, 1, "ok", None, [], surco.Budget()))
    assert FE.f_concordance(fam, [y], runs) == 1.0       # f is the true cost here
    prob = fam.problem(y)
    flipped = dataclasses.replace(
        fam, problem=lambda _y: dataclasses.replace(
            prob, objective=lambda x, yy: -prob.objective(x, yy)))
    assert FE.f_concordance(flipped, [y], runs) == 0.0
    true = np.array([fam.evaluate(x, y) for x in xs])
    order = np.argsort(true)
    half = dataclasses.replace(   # f ranks the 4 best plans last: 16 of 28 pairs flip
        fam, problem=lambda _y: dataclasses.replace(
            prob, objective=lambda x, yy: prob.objective(x, yy)
            + 100.0 * (jnp_sum_matches(x, [xs[i] for i in order[:4]]))))
    assert FE.f_concordance(half, [y], runs) == pytest.approx(12 / 28)
    assert math.isnan(FE.f_concordance(fam, [y], runs[:1]))   # one plan: no pair


def jnp_sum_matches(x, plans):
    """1.0 where x equals one of ``plans`` (JAX), else 0.0."""
    import jax.numpy as jnp
    return sum(jnp.all(x == jnp.asarray(p, x.dtype)).astype(x.dtype) for p in plans)


def test_a_partial_run_writes_its_own_report(monkeypatch, tmp_path):
    """``--families`` naming some settings writes families-evals-NAME...json, never the
    report of all settings; the store is shared."""
    seen = []

    class Rep(Report):
        def __init__(self, bench, quick, path=None):
            seen.append(bench)
            super().__init__(bench, quick, path=tmp_path / f"{bench}.json")

    def fake_measure(rep, setting, n, budgets, store=None, lancer=False):
        seen.append((setting.name, n, store))

    monkeypatch.setattr(FE, "Report", Rep)
    monkeypatch.setattr(FE, "measure", fake_measure)
    FE.main(["--quick", "--families", "routing", "photonics", "--store",
             str(tmp_path / "runs.jsonl")])
    FE.main(["--store", str(tmp_path / "runs.jsonl"), "--resume"])
    store = str(tmp_path / "runs.jsonl")
    assert seen == ["families-evals-routing-photonics", ("routing", 5, store),
                    ("photonics", 3, store), "families-evals",
                    *[(k, s.counts[1], store) for k, s in FE.SETTINGS.items()]]
    assert (tmp_path / "families-evals-routing-photonics.json").is_file()
    assert (tmp_path / "families-evals.json").is_file()
