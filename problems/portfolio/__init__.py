"""Combinatorial portfolio selection with a third-order objective (LANCER, Zharmagambetov
et al., NeurIPS 2023; SurCo, Ferber et al., ICML 2023).

    >>> from surco.problems import portfolio
    >>> y = portfolio.generate(20, seed=0)
    >>> prob = portfolio.make_problem(20)          # Ω: MILP over (x, z); f: LANCER's objective
    >>> res = portfolio.random_feasible(y)
    >>> bool(portfolio.omega(20).contains(res.X))
    True
"""
from .baselines import (PortfolioResult, brute_force_mv, random_feasible, scip_portfolio)
from .instances import (Instance, check_instance, coskewness, covariance, generate,
                        simulate_returns)
from .orlib import OrlibData, ccmv_config, load_orlib, to_instance
from .problem import (PortfolioConfig, features, linearised_cost, make_problem, objective_np,
                      omega, polish, smooth_objective, third_moment, variance,
                      weights_objective)

__all__ = [
    "generate", "check_instance", "covariance", "coskewness", "simulate_returns", "Instance",
    "PortfolioConfig", "omega", "make_problem", "features", "variance", "third_moment",
    "smooth_objective", "weights_objective", "objective_np", "linearised_cost", "polish",
    "PortfolioResult", "scip_portfolio", "brute_force_mv", "random_feasible",
    "OrlibData", "load_orlib", "to_instance", "ccmv_config",
]
