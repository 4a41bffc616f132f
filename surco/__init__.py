"""SurCo: learning linear surrogates for combinatorial nonlinear optimisation.

Ferber, Huang, Zha, Schubert, Steiner, Dilkina, Tian. "SurCo: Learning Linear Surrogates for
Combinatorial Nonlinear Optimization Problems". ICML 2023.

    import surco
    res = surco.zero(problem, instance, estimator="blackbox", steps=100)   # SurCo-zero
    res = surco.zero(problem, instance, surco.ZeroConfig(steps=100))       # the same, configured
    prior = surco.prior.train(problem, train_instances)                    # SurCo-prior
    res = surco.hybrid(problem, instance, prior)                           # SurCo-hybrid
    cmp = surco.compare(family, instances, budget=surco.Budget(evaluations=300))
    print(cmp.table())              # SurCo next to the family's baselines, paired per instance
"""
from surco import driver, estimators, lns, prior, search, solvers
from surco import lancer  # noqa: F401  (LANCER, Zharmagambetov et al., NeurIPS 2023)
from surco.budget import Budget, BudgetExhausted, Meter
from surco.config import TrainConfig, ZeroConfig
from surco.outcome import StopReason
from surco.family import Family
from surco.harness import Comparison, Run, compare, surco_methods
from surco.problem import Instance, Problem, ProblemError, RelaxedOmegaWarning
from surco.prior import PriorModel
from surco.results import PriorResult, TrainHistory, ZeroResult
from surco.driver import NoProgressWarning, hybrid, zero
from surco import derive  # noqa: E402  (derived SCIP, neighbourhoods, families: new problems)
from surco.derive import family_for, scip_minimize  # noqa: E402

__all__ = ["solvers", "estimators", "driver", "lns", "prior", "search", "Problem", "ProblemError", "Instance", "zero",
           "hybrid", "PriorModel", "ZeroResult", "PriorResult", "TrainHistory", "Budget",
           "BudgetExhausted", "Meter", "Family", "compare", "Comparison", "Run", "surco_methods",
           "NoProgressWarning", "RelaxedOmegaWarning", "derive", "family_for", "scip_minimize",
           "ZeroConfig", "TrainConfig", "StopReason"]
