"""Solvers print nothing unless asked (``verbose=True``), checked at the file-descriptor level
(``capfd``), where the libraries' own C/C++ output goes."""
import os
import threading

import numpy as np
import pytest

from ortools.math_opt.solvers.highs_pb2 import HighsOptionsProto

from surco.solvers import make_solver, output
from surco.solvers.qp import QuadraticSolver
from solvers_fixtures import (ALL_BACKENDS, INFEASIBLE_INT, INFEASIBLE_LP, KNAPSACK, MIP_BACKENDS,
                              SHORTEST_PATH, UNBOUNDED_LP, multi_knapsack, sharding_spec,
                              takes)


def highs_noisy_case():
    """A sharding MILP and cost on which HiGHS 1.12 prints its stray
    ``HighsMipSolverData::transformNewIntegerFeasibleSolution tmpSolver.run();`` line (found by
    drawing costs from this stream; `test_the_highs_case_really_prints` keeps it honest)."""
    rng = np.random.default_rng(0)
    rng.normal(size=(300, 8, 3))
    rng.normal(size=(263, 50, 4))
    return sharding_spec(50, 4), rng.normal(size=(50, 4)).round(3)


#: the heuristic during which HiGHS prints that line; the highs backend turns it off by
#: default (it costs ~15 ms per MIP solve), so the noisy case turns it back on
FEASIBILITY_JUMP = {"highs": HighsOptionsProto(
    bool_options={"mip_heuristic_run_feasibility_jump": True})}


def _exercise(backend, **kw):
    """Optimal, infeasible, unbounded (CP-SAT: refused, it needs finite bounds) and
    time-limited solves of ``backend``."""
    feasible = KNAPSACK if takes(backend, KNAPSACK.spec) else SHORTEST_PATH
    make_solver(feasible.spec, backend=backend, **kw).solve(feasible.c)
    for spec in ((INFEASIBLE_INT,) if backend == "cpsat" else (INFEASIBLE_LP, UNBOUNDED_LP)):
        make_solver(spec, backend=backend, **kw).solve(np.array([-1.0, -1.0]), check=False)
    if backend in MIP_BACKENDS:
        spec, c = multi_knapsack()
        make_solver(spec, backend=backend, time_limit=0.2, **kw).solve(c, check=False)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_every_backend_is_silent_by_default(backend, capfd):
    _exercise(backend)
    if backend == "highs":
        spec, c = highs_noisy_case()
        make_solver(spec, backend="highs", **FEASIBILITY_JUMP).solve(c)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_the_highs_case_really_prints(capfd, monkeypatch):
    """Without the filter, HiGHS prints its stray line on `highs_noisy_case` (so the silence
    above is the filter's doing), and the MathOpt SCIP wrapper its two ERROR lines."""
    monkeypatch.setattr(output, "NOISE", {1: (b"@@none@@",), 2: (b"@@none@@",)})
    spec, c = highs_noisy_case()
    make_solver(spec, backend="highs", **FEASIBILITY_JUMP).solve(c)
    make_solver(KNAPSACK.spec, backend="scip").solve(KNAPSACK.c)
    out, err = capfd.readouterr()
    assert out == "HighsMipSolverData::transformNewIntegerFeasibleSolution tmpSolver.run();\n"
    assert "SCIPcatchEvent does not support variable or row change events" in err


def test_quadratic_solver_is_silent(capfd):
    qp = QuadraticSolver(KNAPSACK.spec, 0.5)
    qp.solve(KNAPSACK.c)
    qp.solve(-KNAPSACK.c)
    assert capfd.readouterr() == ("", "")


@pytest.mark.parametrize("backend, marker", [
    ("highs", "HiGHS"), ("scip", "SCIP"), ("pyscipopt", "SCIP"), ("cpsat", "CP-SAT"),
    ("glop", "Initial problem"), ("pdlp", "PDLP")])
def test_verbose_shows_the_solver_log(backend, marker, capfd):
    fx = KNAPSACK if takes(backend, KNAPSACK.spec) else SHORTEST_PATH
    make_solver(fx.spec, backend=backend, verbose=True).solve(fx.c)
    out, err = capfd.readouterr()
    assert marker.lower() in (out + err).lower()


def test_verbose_must_be_a_bool():
    with pytest.raises(ValueError, match="verbose must be True or False, got 'yes'"):
        make_solver(KNAPSACK.spec, verbose="yes")


def test_filter_drops_only_the_known_noise(capfd):
    noise = output.NOISE[1][0]
    with output.filter_noise(1):
        os.write(1, b"before\n" + noise + b"\nafter\n")
        os.write(1, b"unrelated line\n")
        with output.filter_noise(1):     # nested / overlapping windows share one redirection
            t = threading.Thread(target=lambda: os.write(1, b"from a thread\n" + noise + b"\n"))
            t.start()
            t.join()
    os.write(2, b"stderr untouched\n")
    out, err = capfd.readouterr()
    assert out == "before\nafter\nunrelated line\nfrom a thread\n"
    assert err == "stderr untouched\n"
    assert not output._STATE   # the descriptor is restored
