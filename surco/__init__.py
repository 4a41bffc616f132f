"""SurCo: learning linear surrogates for combinatorial nonlinear optimisation.

Ferber, Huang, Zha, Schubert, Steiner, Dilkina, Tian. "SurCo: Learning Linear Surrogates for
Combinatorial Nonlinear Optimization Problems". ICML 2023.
"""
from surco import solvers
from surco.problem import Instance, Problem, ProblemError

__all__ = ["solvers", "Problem", "ProblemError", "Instance"]
