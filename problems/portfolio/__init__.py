"""Combinatorial portfolio selection with a third-order objective (LANCER, Zharmagambetov
et al., NeurIPS 2023; SurCo, Ferber et al., ICML 2023).

    >>> from surco.problems import portfolio
    >>> y = portfolio.make_instance(0, n=20)
    >>> prob = portfolio.make_problem(20)          # Ω: MILP over (x, z); f: LANCER's objective
    >>> res = portfolio.random_feasible(y)
    >>> bool(portfolio.omega(20).contains(res.X))
    True

``portfolio.generate(count, seed=0, n=20, ...)`` is ``FAMILY.generate``; `make_instance` draws
one instance from a seed. ``FAMILY`` (LANCER's config) and ``portfolio_family(config)`` (any config, e.g.
``ccmv_config(ρ)`` for OR-Library's mean–variance problem) are the `surco.Family` of the
comparison harness: random portfolios, the linearisation, local search and annealing over the
selection (weights optimised per support) and SCIP on the true objective.
"""
from .baselines import (NumericalTroubleError, PortfolioResult, brute_force_mv,
                        random_feasible, scip_portfolio)
from .family import FAMILY, TRAIN_SEED, ZERO_SETTINGS_NOTE, portfolio_family
from .methods import (SEARCH_POLISH_STEPS, SupportSpace, baselines_for, linearisation_plan,
                      random_support, surco_search_method)
from .instances import (Instance, check_instance, coskewness, covariance, generate,
                        make_instance, simulate_returns)
from .orlib import OrlibData, ccmv_config, find_orlib, load_orlib, to_instance
from .problem import (PortfolioConfig, SupportSolver, features, linearised_cost, make_problem,
                      objective_batch, objective_np, omega, polish, polish_weights,
                      smooth_objective, support_is_qp, support_objective, third_moment,
                      variance, warm_starts, weights_objective)

__all__ = [
    "generate", "make_instance", "check_instance", "covariance", "coskewness", "simulate_returns", "Instance",
    "PortfolioConfig", "omega", "make_problem", "features", "variance", "third_moment",
    "smooth_objective", "weights_objective", "objective_np", "objective_batch",
    "linearised_cost", "polish", "polish_weights", "SupportSolver", "support_is_qp",
    "support_objective", "warm_starts",
    "PortfolioResult", "scip_portfolio", "brute_force_mv", "random_feasible",
    "NumericalTroubleError", "OrlibData", "load_orlib", "find_orlib", "to_instance",
    "ccmv_config", "FAMILY", "portfolio_family", "TRAIN_SEED",
    "ZERO_SETTINGS_NOTE", "surco_search_method", "SupportSpace", "baselines_for",
    "linearisation_plan", "random_support", "SEARCH_POLISH_STEPS",
]
