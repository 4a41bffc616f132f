"""SurCo: learning linear surrogates for combinatorial nonlinear optimisation.

Ferber, Huang, Zha, Schubert, Steiner, Dilkina, Tian. "SurCo: Learning Linear Surrogates for
Combinatorial Nonlinear Optimization Problems". ICML 2023.

    import surco
    res = surco.zero(problem, instance, estimator="blackbox", steps=100)   # SurCo-zero
    prior = surco.prior.train(problem, train_instances)                    # SurCo-prior
    res = surco.hybrid(problem, instance, prior)                           # SurCo-hybrid
"""
from surco import estimators, prior, solvers
from surco.problem import Instance, Problem, ProblemError
from surco.prior import PriorModel
from surco.results import PriorResult, TrainHistory, ZeroResult
from surco.zero import hybrid, zero

__all__ = ["solvers", "estimators", "prior", "Problem", "ProblemError", "Instance", "zero",
           "hybrid", "PriorModel", "ZeroResult", "PriorResult", "TrainHistory"]
