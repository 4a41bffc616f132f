"""Neighbourhoods of Ω for the non-learned searches (`surco.search`).

Two neighbourhood structures, derived generically from Ω:

* `RowChoice`: x ∈ {0,1}^{R×K} with exactly one 1 per row (``Σ_k x[r,k] = 1``) and any
  linear rows ``A_ub x <= b_ub`` (capacities, "every column used", further equalities
  written as two inequalities). Moves: *move* one row to another column; *swap* the columns
  of two rows that sit in different columns (the 2-exchange of Papadimitriou & Steiglitz
  1982, ch. 19). `RowChoice.from_spec` reads it off a `surco.solvers.LinearSpec`
  (assignment, sharding). Feasibility of a candidate is checked incrementally on
  ``A_ub x``: a move changes it by two columns of A_ub, a swap by four, never a solver call.
* `Cardinality`: z ∈ {0,1}^n with ``k_min <= Σz <= k_max`` and optional fixed-in / fixed-out
  entries (portfolio selection). Moves: *swap* one selected entry for an unselected one,
  *add* one, *drop* one.

Each neighbourhood enumerates all feasible neighbours of x at once (an array, to be scored by
one ``meter.batch`` call) and draws one uniformly random feasible neighbour:

    >>> import numpy as np
    >>> nb = Cardinality(4, 2, 2)
    >>> nb.neighbours(np.array([1.0, 1.0, 0.0, 0.0])).shape   # 2 selected x 2 unselected
    (4, 4)

A new neighbourhood subclasses `Neighbourhood` (its state methods are what the searches call).
The names are also importable from `surco.search`, next to the searches that use them.
"""
from surco.neighbourhoods.base import Neighbourhood, as_rng
from surco.neighbourhoods.cardinality import Cardinality
from surco.neighbourhoods.row_choice import RowChoice

__all__ = ["Neighbourhood", "RowChoice", "Cardinality", "as_rng"]
