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


def test_a_finished_setting_is_recorded_and_read_back(tmp_path):
    from bench.scale import finished_setting, record_setting, settings_path
    store = tmp_path / "scale.runs.jsonl"
    assert finished_setting(store, "T=20,D=4", "analytic", 2) is None       # no file yet
    record_setting(store, "T=20,D=4", "analytic", 2, {"start_seconds": 0.5, "starts": [1.0, 2.0],
                                                      "not measured": 3})
    record_setting(store, "T=20,D=4", "torchrec", 2, {"start_seconds": 0.7, "starts": [4.0, 5.0]})
    r = finished_setting(store, "T=20,D=4", "analytic", 2)
    assert (r["start_seconds"], r["starts"], r["n"]) == (0.5, [1.0, 2.0], 2)
    assert "not measured" not in r and "commit" in r
    assert finished_setting(store, "T=20,D=4", "analytic", 5) is None       # other task count
    assert finished_setting(store, "T=40,D=4", "analytic", 2) is None
    # a write cut short is not a record, and the next record replaces it
    with open(settings_path(store), "a") as fh:
        fh.write('{"setting": "T=40,D=4", "cost_model": "analytic", "n": 2, "sta')
    assert finished_setting(store, "T=40,D=4", "analytic", 2) is None
    record_setting(store, "T=20,D=4", "analytic", 2, {"start_seconds": 0.25, "starts": [1.0, 2.0]})
    assert finished_setting(store, "T=20,D=4", "analytic", 2)["start_seconds"] == 0.25  # last wins
    lines = settings_path(store).read_text().split("\n")
    assert len(lines) == 4 and lines[-1] == "" and "T=40" not in settings_path(store).read_text()
    settings_path(store).write_text('{"setting": 1}\nnot json\n')
    with pytest.raises(ValueError, match=r"scale.runs.jsonl.settings.jsonl, line 2: not a setting"):
        finished_setting(store, "T=20,D=4", "analytic", 2)


@pytest.mark.slow
def test_a_rerun_of_a_finished_setting_reads_the_store_and_computes_nothing(tmp_path, monkeypatch):
    """Sibling of the test above: the whole setting, run twice on one store; the second run
    makes no start plan, no warm-up and no run, and reports the same."""
    import bench.scale as B
    from surco.problems.sharding import scale
    store = tmp_path / "scale.runs.jsonl"
    rows, fails, out, _ = B.run_setting(12, 3, 2, "analytic", store)
    n_runs = len(store.read_text().splitlines())

    def boom(*a, **k):
        raise AssertionError("computed again")

    monkeypatch.setattr(scale, "start_plan", boom)
    monkeypatch.setattr(B, "_warm", boom)
    rows2, fails2, out2, _ = B.run_setting(12, 3, 2, "analytic", store)
    assert len(store.read_text().splitlines()) == n_runs
    assert out2 == out and rows2 == rows and fails2 == fails == []
    assert B.finished_setting(store, "T=12,D=3", "analytic", 2)["runs"] == n_runs
    # runs dropped from the store after the record: the record is not trusted, the setting
    # is prepared again (start plans, warm-up) and the missing runs computed
    from surco.store import RunStore
    assert RunStore(store).drop("annealing") > 0
    with pytest.raises(AssertionError, match="computed again"):
        B.run_setting(12, 3, 2, "analytic", store)


def test_replot_draws_the_png_from_the_json_summary(tmp_path, monkeypatch):
    import bench.scale as B
    means = {"own": {"cost-greedy": 10.0, "surco-zero": 9.5},
             "time": {"annealing": 9.7, "surco-zero": 9.5},
             "evals": {"annealing": 9.8, "surco-zero": 9.6}}
    summary = {"analytic": {f"T={T},D={D}": {"T": T, "D": D, "means": means,
                                             "seconds": {"cost-greedy": 0.1 * T}}
                            for T, D in ((200, 16), (100, 8), (100, 16))}}
    (tmp_path / "scale-quick.json").write_text(json.dumps({"summary": summary}))
    monkeypatch.setattr(B, "RESULTS", tmp_path)
    B.main(["--quick", "--replot"])
    assert (tmp_path / "scale-quick.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "scale-quick.json").write_text("{}")
    with pytest.raises(ValueError, match=r"--replot: .*scale-quick.json has no summary"):
        B.main(["--quick", "--replot"])
