"""Derived neighbourhoods against the hand-written searches (issue 27, part 3).

For each existing family, `surco.family_for` derives a family from its problem alone (the
neighbourhood read off Ω's rows, `surco.derive.neighbourhood_for`), given the family's own
true cost and Ω check; its local searches and annealing run next to the family's
hand-written ones on the same instances at equal evaluations of the true cost:

    python -m bench.derived --quick    # 5 instances per family, 300 evaluations
    python -m bench.derived            # 10 instances per family

Target (met or not, per family): the derived method's mean cost within 1 % of the
hand-written method's, ``excess = (derived − hand) / |hand| <= 0.01`` (steepest local
search, first-improvement local search, annealing; and the best derived against the best
hand-written, per instance). ``excess`` rather than a ratio because portfolio's costs are
negative. Sizes are the families' defaults (assignment 8×3,
sharding 20 tables on 4 devices, portfolio 20 assets, routing 5×5 grid); SCIP is left out
(this measures the searches).

Writes ``bench/results/derived[-quick].json``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from bench._report import Report, compare, parse_args

EVALS = 300
N_FULL, N_QUICK = 10, 5
#: instance sizes (FAMILY.generate keywords); routing's default 5×5 grid leaves every
#: method on the same paths, so an 8×8 grid
SIZES = {"routing": {"n": 8}}
#: family -> {derived method: the hand-written method it replaces}
PAIRS = {
    "assignment": {"local-search-steepest": "local-search-steepest",
                   "local-search-first": "local-search-first", "annealing": "annealing"},
    "sharding": {"local-search-steepest": "local-search", "local-search-first":
                 "local-search-first", "annealing": "annealing"},
    "portfolio": {"local-search-steepest": "local-search-steepest",
                  "local-search-first": "local-search-first", "annealing": "annealing"},
    "routing": {"local-search-steepest": "local-search", "local-search-first":
                "local-search-first", "annealing": "annealing"},
}


def _excess(derived: np.ndarray, hand: np.ndarray) -> float:
    """(mean derived − mean hand-written) / |mean hand-written|: > 0 when derived is worse."""
    if derived.size == 0:
        return float("nan")
    return float((np.mean(derived) - np.mean(hand)) / abs(np.mean(hand)))


def measure(name: str, n: int) -> tuple[list[dict], dict]:
    """Run the derived and the hand-written searches of one family; rows and targets."""
    import importlib

    import surco
    fam = importlib.import_module(f"surco.problems.{name}").FAMILY
    derived = surco.family_for(fam.problem, fam.generate, evaluate=fam.evaluate,
                               evaluate_batch=fam.evaluate_batch,
                               violations_fn=fam.violations_fn, scip=False,
                               name=f"{fam.name}-derived")
    ys = fam.generate(n, seed=0, **SIZES.get(name, {}))
    budget = surco.Budget(evaluations=EVALS)
    pairs = PAIRS[name]
    own = compare(fam, ys, sorted(set(pairs.values())), budget=budget, progress=False)
    der = compare(derived, ys, list(pairs), budget=budget, progress=False)
    rows, ratios = [], {}
    for d, h in pairs.items():
        dv, hv = der.values(d), own.values(h)
        ok = np.isfinite(dv) & np.isfinite(hv)
        ratio = _excess(dv[ok], hv[ok])
        ratios[d] = ratio
        rows.append({"family": name, "derived": d, "hand_written": h, "n": int(ok.sum()),
                     "derived_mean": float(np.mean(dv[ok])), "hand_mean": float(np.mean(hv[ok])),
                     "excess": ratio, "wins": int(np.sum(dv[ok] < hv[ok] - 1e-9)),
                     "losses": int(np.sum(dv[ok] > hv[ok] + 1e-9)),
                     "failed": int(np.sum(~np.isfinite(dv)))})
    best_d = np.nanmin(np.stack([der.values(d) for d in pairs]), 0)
    best_h = np.nanmin(np.stack([own.values(h) for h in set(pairs.values())]), 0)
    ratios["best"] = _excess(best_d, best_h)
    rows.append({"family": name, "derived": "best of the three", "hand_written": "best",
                 "n": n, "derived_mean": float(np.mean(best_d)),
                 "hand_mean": float(np.mean(best_h)), "excess": ratios["best"],
                 "wins": int(np.sum(best_d < best_h - 1e-9)),
                 "losses": int(np.sum(best_d > best_h + 1e-9)), "failed": 0})
    return rows, {"neighbourhood": derived.notes["neighbourhood"], "ratios": ratios,
                  "comparisons": {"hand-written": own, "derived": der}}


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__.splitlines()[0], argv,
                      extra=lambda p: p.add_argument("--families", nargs="*", default=list(PAIRS)))
    n = N_QUICK if args.quick else N_FULL
    rep = Report("derived", args.quick)
    notes = {}
    for name in args.families:
        rows, info = measure(name, n)
        notes[name] = info["neighbourhood"]
        for r in rows:
            rep.row(**r)
        for which, cmp in info["comparisons"].items():
            rep.add_map(cmp, f"{name}, {which}")
        rep.target(f"{name}: (best derived − best hand-written) / |best hand-written| mean "
                   f"cost at {EVALS} evaluations", info["ratios"]["best"], "<=", 0.01)
    rep.extra["neighbourhoods"] = notes
    rep.extra["instances"] = (f"FAMILY.generate({n}, seed=0, **SIZES[family]) with SIZES = "
                              f"{SIZES}, the families' defaults otherwise")
    rep.finish(table_columns=["family", "derived", "hand_written", "derived_mean", "hand_mean",
                              "excess", "wins", "losses", "failed"])


if __name__ == "__main__":
    main()
