"""`surco.outcome.MeteredResult`: the fields every metered search returns, ``evaluations``
among them, declared once there and not by the searches' own results."""
import dataclasses

import numpy as np
import pytest

from surco.lancer import LancerResult
from surco.lns import LNSResult
from surco.outcome import MeteredResult, StopReason
from surco.plateau import PlateauResult

COMMON = dict(x=np.zeros(2), value=1.5, c=None, theta=None, history={},
              stopped=StopReason.BUDGET, seconds=0.25)


@pytest.mark.parametrize("cls,own", [(LNSResult, {"iterations", "accepted"}),
                                     (LancerResult, {"f", "params", "rounds"}),
                                     (PlateauResult, {"steps", "restarts"})])
def test_every_metered_result_counts_evaluations_in_the_base(cls, own):
    base = [f.name for f in dataclasses.fields(MeteredResult)]
    assert "evaluations" in base
    assert {f.name for f in dataclasses.fields(cls)} - set(base) == own
    assert "evaluations" not in cls.__dict__.get("__annotations__", {})
    r = cls(**COMMON, evaluations=7)
    assert r.evaluations == 7
    assert repr(r).startswith(f"{cls.__name__}(value=1.5, evaluations=7, ")
    with pytest.raises(TypeError, match="evaluations"):   # no default: every run counts
        cls(**COMMON)


def test_repr_lists_the_counts():
    r = LNSResult(**COMMON, evaluations=4, iterations=9, accepted=2)
    assert repr(r) == ("LNSResult(value=1.5, evaluations=4, iterations=9, accepted=2, "
                       "stopped=<StopReason.BUDGET: 'budget'>, seconds=0.25)")
