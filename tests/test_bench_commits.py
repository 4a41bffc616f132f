"""bench.commits: rows of a report written before rows carried "commits" get them from the
store's runs, matched by setting, method and budget label and checked against the row."""
from __future__ import annotations

import copy
import json

import pytest

import surco
from surco.budget import Budget
from surco.problems import assignment as A

from bench import commits as C

FAM = A.FAMILY
INSTS = FAM.generate(3, seed=5, n=6, m=3)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A store with runs at three budgets (own, 20 evaluations, the time of
    local-search-first's own runs), and an old-style report of them (rows without commits)."""
    d = tmp_path_factory.mktemp("commits")
    store = d / "toy.runs.jsonl"
    own = surco.compare(FAM, INSTS, ["mean-cost", "local-search-first"], store=store,
                        setting="s")
    ev = surco.compare(FAM, INSTS, ["local-search-first", "annealing"],
                       budget=Budget(evaluations=20), store=store, setting="s")
    eq = surco.compare(FAM, INSTS, ["annealing"], budget=own.matched_budget("local-search-first"),
                       store=store, setting="s")
    rows = [*own.to_rows(setting="s", budget="own"),
            *ev.to_rows(setting="s", budget="20 evaluations"),
            *eq.to_rows(setting="s", budget="time of local-search-first")]
    for r in rows:
        r.pop("commits", None)
    # the runs of annealing at 20 evaluations ran at another commit, in another sitting
    lines = store.read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    for rec in recs:
        if rec["run"]["method"] == "annealing" and rec["run"]["budget"]["evaluations"] == 20:
            rec["run"]["commit"] = "f" * 40
    store.write_text("".join(json.dumps(r) + "\n" for r in recs))
    report = {"bench": "toy", "rows": rows}
    return store, report, {r.commit for r in own.runs}


def test_each_row_gets_the_commits_of_its_own_runs(made):
    store, report, head = made
    report = copy.deepcopy(report)
    assert C.stamp(report, surco.store.RunStore(store)) == []
    by = {(r["budget"], r["method"]): r["commits"] for r in report["rows"]}
    assert len(by) == 5
    assert by[("20 evaluations", "annealing")] == ["f" * 40]
    for k in [("own", "mean-cost"), ("own", "local-search-first"),
              ("20 evaluations", "local-search-first"),
              ("time of local-search-first", "annealing")]:
        assert by[k] == sorted(c for c in head if c), k
    assert "bench.commits" in report["commits_from"]
    # stamping again checks the commits already there and changes nothing
    again = copy.deepcopy(report)
    assert C.stamp(again, surco.store.RunStore(store)) == [] and again == report


def test_a_row_that_its_runs_do_not_give_is_named_and_nothing_is_written(made):
    store, report, _ = made
    report = copy.deepcopy(report)
    report["rows"][1]["value"] += 1e-3
    report["rows"][3]["n"] = 4
    before = copy.deepcopy(report)
    problems = C.stamp(report, surco.store.RunStore(store))
    assert len(problems) == 2
    assert problems[0].startswith("row 1 (s, own, local-search-first): the matching runs' mean")
    assert problems[1].startswith("row 3 (s, 20 evaluations, annealing): 3 runs match, the row "
                                  "has n = 4")
    assert report == before
    with pytest.raises(ValueError, match="budget label 'per run'"):
        C.stamp({"rows": [{**before["rows"][0], "budget": "per run"}]},
                surco.store.RunStore(store))


def test_the_command_line_writes_the_report_or_refuses(made, tmp_path, capsys):
    store, report, _ = made
    (tmp_path / "toy.runs.jsonl").write_bytes(store.read_bytes())
    (tmp_path / "toy.json").write_text(json.dumps(report))
    assert C.main(["toy", "--results", str(tmp_path)]) == 0
    out = json.loads((tmp_path / "toy.json").read_text())
    assert all(r["commits"] for r in out["rows"])
    assert "5 rows stamped" in capsys.readouterr().out
    bad = copy.deepcopy(report)
    bad["rows"][0]["failed"] = 2
    (tmp_path / "toy.json").write_text(json.dumps(bad))
    assert C.main(["toy", "--results", str(tmp_path)]) == 1
    assert json.loads((tmp_path / "toy.json").read_text()) == bad
    assert "matching runs failed, the row says 2" in capsys.readouterr().out
