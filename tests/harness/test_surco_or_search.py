"""`surco.whichmethod.surco_or_search` on hand-made traces with known answers: cells that the
which-method map leaves open because a run was cut off by its budget."""
import numpy as np

import surco
from surco.whichmethod import surco_or_search
from surco.budget import Budget


def _cmp():
    b = Budget(evaluations=300)
    runs = [surco.Run("annealing", 0, np.zeros(1), 2.0, 0.1, 300, "budget", None,
                      [(1, 0.001, 5.0), (300, 0.1, 2.0)], b, cut_off=True),
            surco.Run("surco-zero", 0, np.zeros(1), 1.0, 10.0, 30, "ok", None,
                      [(1, 0.5, 3.0), (30, 10.0, 1.0)], b, cut_off=False)]
    return surco.Comparison("toy", runs, ["annealing", "surco-zero"], 1)


def test_cut_off_runs_bound_the_cells_the_map_leaves_open():
    cmp = _cmp()
    m = cmp.map(costs=(0.0, 1.0), budgets=(1.0, 20.0))
    assert m.winner == [[None, None], [None, "surco-zero"]]
    s = surco_or_search(cmp, costs=(0.0, 1.0), budgets=(1.0, 20.0))
    # (0 s, 1 s): annealing had 2.0 by 0.1 s, SurCo-zero 3.0 by 1 s: the search surely wins;
    # (0 s, 20 s): SurCo-zero's 1.0 against annealing's bound 2.0: open (more time might
    # take annealing below 1.0); (1 s, 1 s): neither has a value yet
    assert s["side"] == [["search", None], [None, "surco"]]
    assert s["search_up_to"] == 0.0 and s["surco_from"] == 1.0
    assert s["sentence"].startswith("SurCo pays off when one evaluation costs more than 0 s")


def test_never_pays_off_and_always_pays_off():
    cmp = _cmp()
    s = surco_or_search(cmp, costs=(0.0,), budgets=(1.0,))
    assert s["side"] == [["search"]] and s["surco_from"] is None
    assert s["sentence"].startswith("SurCo does not pay off")
    s = surco_or_search(cmp, costs=(1.0,), budgets=(20.0,))
    assert s["side"] == [["surco"]] and s["search_up_to"] is None
    assert s["sentence"].startswith("SurCo pays off at every cost")
