"""bench.scale's report of time against size: the growth exponent is the least-squares slope
of log(seconds) against log T (checked on a closed form and on the quick run's summary) of
the runs that did not fail, and
the full run's 800/128 target counts that setting's failed runs only."""
import json
from pathlib import Path

import numpy as np
import pytest

from types import SimpleNamespace

from bench.scale import Report, _targets, growth_exponents, seconds_per_task


def _summary(seconds_of):
    return {"analytic": {f"T={T},D={D}": {"T": T, "D": D, "seconds": seconds_of(T, D)}
                         for T, D in ((100, 8), (200, 16), (400, 32), (800, 64))}}


def test_the_exponent_of_a_power_law_is_recovered():
    g = growth_exponents(_summary(lambda T, D: {"surco-zero": 0.01 * T ** 1.5,
                                                "cost-greedy": 3e-4 * T,
                                                "broken": 0.0}))["analytic"]
    assert g["surco-zero"]["exponent"] == pytest.approx(1.5, abs=1e-9)
    assert g["cost-greedy"]["exponent"] == pytest.approx(1.0, abs=1e-9)
    assert "broken" not in g                      # a zero time has no logarithm: left out
    assert g["surco-zero"]["points"][0] == (100, 8, pytest.approx(0.01 * 100 ** 1.5))


def test_failed_runs_do_not_count_in_the_seconds_per_task():
    run = lambda m, sec, status="ok": SimpleNamespace(method=m, seconds=sec, status=status)
    cmp = SimpleNamespace(methods=["surco-zero", "torchrec-planner", "refused"], runs=[
        run("surco-zero", 2.0), run("surco-zero", 4.0),
        run("torchrec-planner", 10.0), run("torchrec-planner", 0.5, "failed"),
        run("refused", 0.9, "failed")])
    assert seconds_per_task(cmp) == {"surco-zero": 3.0, "torchrec-planner": 10.0}


def test_the_exponent_is_the_least_squares_slope_on_the_quick_summary():
    path = Path(__file__).resolve().parents[2] / "bench" / "results" / "scale-quick.json"
    summary = json.loads(path.read_text())["summary"]
    g = growth_exponents(summary)
    for model, settings in summary.items():
        pts = [(s["T"], s["seconds"]["surco-zero"]) for s in settings.values()]
        T, sec = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
        slope = np.sum((T - T.mean()) * (sec - sec.mean())) / np.sum((T - T.mean()) ** 2)
        assert g[model]["surco-zero"]["exponent"] == pytest.approx(slope, rel=1e-9)


def test_the_800_128_target_counts_its_own_failures(tmp_path):
    summary = {"analytic": {"T=800,D=128": {"T": 800, "D": 128, "seconds": {}}}}
    fails = [{"setting": "T=800,D=128", "method": "annealing"},
             {"setting": "T=400,D=64", "method": "annealing"}]
    rep = Report("scale", False, path=tmp_path / "s.json")
    _targets(rep, summary, fails)
    (t,) = [t for t in rep.targets if t["name"].startswith("T=800,D=128")]
    assert (t["value"], t["op"], t["target"]) == (1.0, "<=", 0.0)
    rep = Report("scale", True, path=tmp_path / "q.json")
    _targets(rep, {"analytic": {}}, fails)        # a run without 800/128 states no such target
    assert not rep.targets


def test_grid_selection_keeps_the_grids_order_and_names_a_bad_item():
    from bench.scale import select_grid
    grid = ((100, 8), (200, 16), (800, 128))
    assert select_grid(grid, ["800/128", "100/8"]) == [(100, 8), (800, 128)]
    with pytest.raises(ValueError, match="'200x16' is not T/D"):
        select_grid(grid, ["200x16"])
    with pytest.raises(ValueError, match="400/32 is not a setting of the grid 100/8 200/16"):
        select_grid(grid, ["400/32"])
