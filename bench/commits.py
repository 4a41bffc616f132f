"""Give each row of a bench report the commits its runs ran at, read from the bench's store,
for reports written before rows carried ``"commits"`` (docs/bench-format.md). Nothing is
recomputed and no value is changed.

    python -m bench.commits sharding lns portfolio scale

Each row (setting, method, budget label) is matched to the store's runs by setting, method
and budget:

- ``own``: no limit on seconds or evaluations (the method's own stopping rule), or the one
  time cap of a method that always runs under its own cap (an exact solver);
- ``N evaluations``: ``Budget(evaluations=N)``;
- ``N s``: ``Budget(seconds=N)``;
- ``time of M`` / ``wall time of M``: per instance, the seconds that M's own run spent
  there (`surco.Comparison.matched_budget`), or else its run at N evaluations (bench.lns);
- ``N evaluations`` for a method without an evaluation meter (an exact solver): per
  instance, the seconds that a metered method's run at N evaluations spent there.

The match is then checked against the row before anything is written: one run per instance
(``n`` instances), ``failed`` of them failed, and the mean value of the others equal to the
row's ``value``. A row that fails the check is named and the report is left as it was; a
row that already has ``"commits"`` is checked the same way.
"""
from __future__ import annotations

import argparse
import json
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

from surco.atomic import write_bytes
from surco.store import RunStore

from bench._report import RESULTS

_EVALS = re.compile(r"^(\d+) evaluations$")
_SECONDS = re.compile(r"^(\d+(?:\.\d+)?) s$")
_TIME_OF = re.compile(r"^(?:wall )?time of (\S+)$")


def _runs_by_setting(store: RunStore) -> dict[str, dict[str, list[tuple[int, Any]]]]:
    """setting -> family -> [(instance index, Run)] of every record in ``store``."""
    out: dict = defaultdict(lambda: defaultdict(list))
    for rec in store.records():
        out[rec.get("setting")][rec.get("family")].append(
            (RunStore.instance_of(rec)[0], RunStore.to_run(rec)))
    return out


def _family_runs(row: dict, families: dict[str, list]) -> list[tuple[int, Any]]:
    """The runs of the row's family among a setting's ``families``: the only one, the one the
    row names (``"family"``), or the one whose name ends with one of the row's string values
    (bench.scale's ``cost_model``: family ``sharding-scale-analytic``)."""
    if len(families) <= 1:
        return next(iter(families.values()), [])
    if row.get("family") in families:
        return families[row["family"]]
    named = [f for f in families if any(isinstance(v, str) and f.endswith(f"-{v}")
                                        for v in row.values())]
    return families[named[0]] if len(named) == 1 else []


def _matches(label: str | None, runs: list[tuple[int, Any]],
             method: str) -> list[list[tuple[int, Any]]]:
    """The candidate sets of runs of ``method`` among ``runs`` that the budget label
    ``label`` may name (one set, or one per metered method whose time it may be)."""
    mine = [(i, r) for i, r in runs if r.method == method]
    b = lambda r: r.budget  # noqa: E731
    if label in (None, "own"):
        free = [(i, r) for i, r in mine if b(r).seconds is None and b(r).evaluations is None]
        capped = {b(r).seconds for _, r in mine if b(r).evaluations is None}
        if free or len(capped) != 1:
            return [free]
        return [mine]     # a method with a time cap of its own (an exact solver), one cap
    if m := _EVALS.match(label):
        n = int(m.group(1))
        found = [(i, r) for i, r in mine if b(r).evaluations == n and b(r).seconds is None]
        if found:
            return [found]
        # a method without an evaluation meter (an exact solver), given per instance the time
        # that one metered method's run at n evaluations spent: one candidate per such method
        out = []
        for other in dict.fromkeys(r.method for _, r in runs if b(r).evaluations == n):
            spent = {(i, max(r.seconds, 1e-3)) for i, r in runs
                     if r.method == other and b(r).evaluations == n}
            out.append([(i, r) for i, r in mine if b(r).evaluations is None
                        and (i, b(r).seconds) in spent])
        return out
    if m := _SECONDS.match(label):
        s = float(m.group(1))
        return [[(i, r) for i, r in mine if b(r).seconds == s and b(r).evaluations is None]]
    if m := _TIME_OF.match(label):
        ref = m.group(1)
        for free in (True, False):   # M's own runs first, then its runs at N evaluations
            spent = {(i, max(r.seconds, 1e-3)) for i, r in runs if r.method == ref
                     and b(r).seconds is None and (b(r).evaluations is None or not free)}
            found = [(i, r) for i, r in mine if b(r).seconds is not None
                     and (i, b(r).seconds) in spent]
            if found:
                return [found]
        return [[]]
    raise ValueError(f"bench.commits: budget label {label!r} is not one of 'own', "
                     f"'N evaluations', 'N s', 'time of M'")


def _check(row: dict, found: list[tuple[int, Any]]) -> str | None:
    """Why ``found`` is not the row's runs, or None when it is."""
    instances = [i for i, _ in found]
    if len(set(instances)) != len(instances):
        return f"{len(instances) - len(set(instances))} instances have two matching runs"
    if len(instances) != row["n"]:
        return f"{len(instances)} runs match, the row has n = {row['n']}"
    ok = [r.value for _, r in found if r.ok]
    if row.get("failed") is not None and len(found) - len(ok) != row["failed"]:
        return f"{len(found) - len(ok)} matching runs failed, the row says {row['failed']}"
    if ok and row.get("value") is not None:
        mean = sum(ok) / len(ok)     # the row's value is -mean for a family that maximises
        if not any(math.isclose(s * mean, row["value"], rel_tol=1e-9, abs_tol=1e-12)
                   for s in (1, -1)):
            return f"the matching runs' mean is {mean!r}, the row's value {row['value']!r}"
    return None


def stamp(report: dict, store: RunStore) -> list[str]:
    """Set ``"commits"`` on every row of ``report`` (a bench JSON, changed in place) from the
    runs of ``store``. Returns the problems, one line per row that does not match its runs;
    when there is any, ``report`` is left unchanged."""
    by_setting = _runs_by_setting(store)
    commits, problems = [], []
    for k, row in enumerate(report["rows"]):
        cands = _matches(row.get("budget"), _family_runs(row, by_setting.get(row["setting"], {})),
                         row["method"]) or [[]]
        whys = [_check(row, c) for c in cands]
        found, why = next(((c, w) for c, w in zip(cands, whys) if w is None), (cands[0], whys[0]))
        if why:
            problems.append(f"row {k} ({row['setting']}, {row.get('budget')}, "
                            f"{row['method']}): {why}")
        cs = sorted({r.commit for _, r in found if r.commit})
        if not why and row.get("commits") not in (None, cs):
            problems.append(f"row {k}: it says commits {row['commits']}, its runs {cs}")
        commits.append(cs)
    if not problems:
        for row, cs in zip(report["rows"], commits):
            row["commits"] = cs
        report["commits_from"] = "the store's runs (python -m bench.commits)"
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="+", help="report names under bench/results (sharding ...)")
    p.add_argument("--results", type=Path, default=RESULTS)
    a = p.parse_args(argv)
    bad = 0
    for name in a.names:
        path = a.results / f"{name}.json"
        report = json.loads(path.read_text())
        problems = stamp(report, RunStore(a.results / f"{name}.runs.jsonl"))
        for line in problems:
            print(f"{name}: {line}")
        if problems:
            bad += 1
            continue
        write_bytes(path, (json.dumps(report, indent=1) + "\n").encode())
        n = {c for row in report["rows"] for c in row["commits"]}
        print(f"{name}: {len(report['rows'])} rows stamped; commits {sorted(c[:7] for c in n)}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
