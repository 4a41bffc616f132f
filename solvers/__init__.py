"""The solver layer: Ω as a `LinearSpec`, backends that minimise a linear cost over it, and
combinatorial oracles with the same contract.

Every backend is silent unless built with ``verbose=True``, stops within about a second
of Ctrl-C with a plain `KeyboardInterrupt` (`surco.solvers.blocking`), and returns within
0.5 s of its ``time_limit`` (`Solver.solve`). A new backend or
oracle subclasses `Solver` and implements ``solve_flat`` and ``factory`` (optionally
``check_cost_values`` and a ``spec`` property); a blocking solver call goes through
`blocking_call`.

    >>> import numpy as np
    >>> from surco.solvers import LinearSpec, make_solver
    >>> spec = LinearSpec(shape=(3,), A_ub=[[2.0, 3.0, 4.0]], b_ub=[5.0], ub=1, integer=True)
    >>> make_solver(spec, backend="highs").solve(np.array([-3.0, -4.0, -5.0])).x
    array([1., 1., 0.])
"""
from . import jax_oracles
from ._kwargs import check_kwargs
from .base import Solver
from .batching import RayExecutor, clear_worker_cache
from .blocking import blocking_call
from .oracles import AssignmentOracle, ShortestPathOracle
from .registry import BACKENDS, DEFAULT_BACKEND, SolverStack, make_solver
from .result import (InfeasibleError, ModelTooLargeError, Solution, SolverError,
                     SolverTimeout, Status, UnboundedError)
from .blocks import Blocks, Rows
from .mathopt_import import mathopt_cost
from .spec import LinearSpec

__all__ = [
    "LinearSpec", "Blocks", "Rows", "mathopt_cost",
    "Solver", "Solution", "Status", "make_solver", "BACKENDS", "DEFAULT_BACKEND",
    "SolverStack",
    "ShortestPathOracle", "AssignmentOracle", "SolverError", "InfeasibleError",
    "UnboundedError", "SolverTimeout", "ModelTooLargeError", "clear_worker_cache", "blocking_call", "jax_oracles",
    "RayExecutor", "check_kwargs",
]
