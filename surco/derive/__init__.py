"""Everything a new problem gets from its `surco.Problem` alone.

* `scip_minimize` / `scip_method`: SCIP on the true objective, the model written from f's
  jaxpr (`surco.derive.scip`);
* `neighbourhood_for`: local-search moves read off Ω's rows (`surco.derive.neighbourhoods`:
  assignment rows, cardinality rows, unit moves under capacity rows, integer moves with
  the continuous entries re-optimised on a mixed Ω (`surco.derive.mixed`), solver repair);
* `family_for`: a complete `surco.Family` (start, local search, annealing, SCIP, SurCo-zero
  settings) for `surco.compare` (`surco.derive.family`).

    import surco
    family = surco.family_for(problem, generate)
    cmp = surco.compare(family, family.generate(5), budget=surco.Budget(evaluations=300))
"""
from .blocks import BlockChoice, NeighbourhoodUnion
from .family import DerivedFamily, family_for
from .mixed import CompletedMoves, ContinuousCompletion
from .gradients import gradient_cost, value_and_gradient
from .neighbourhoods import RowKinds, UnitExchange, classify_rows
from .repair import SolverRepair, neighbourhood_for
from .scip import (SCIP_DEFAULT_SECONDS, SUPPORTED, ScipNumericsWarning, ScipResult,
                   UnsupportedError, scip_method, scip_minimize, spec_of)

__all__ = ["scip_minimize", "scip_method", "ScipResult", "ScipNumericsWarning",
           "UnsupportedError", "SUPPORTED", "spec_of", "SCIP_DEFAULT_SECONDS",
           "family_for", "DerivedFamily", "neighbourhood_for", "classify_rows", "RowKinds",
           "UnitExchange", "SolverRepair", "gradient_cost", "value_and_gradient", "BlockChoice",
           "NeighbourhoodUnion", "CompletedMoves", "ContinuousCompletion"]
