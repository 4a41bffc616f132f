"""Stochastic on-time-arrival shortest path on grid graphs (SurCo §5.3; LANCER).

Maximise ``P(arrival <= T) = Φ((T − μ·x) / sqrt(σ²·x))`` over s–t paths x of an n×n grid
whose edge times are independent Normals.

    >>> from surco.problems import routing
    >>> y = routing.make_instance(0, n=5, regime="risk", q=2.0)
    >>> prob = routing.make_problem(5)                 # Ω = Dijkstra oracle, f = −z
    >>> routing.brute_force(y).prob >= routing.let_path(y).prob
    True

``routing.generate(count, seed=0, n=5, regime="risk", q=1.0, k=1.0)`` is ``FAMILY.generate``
(instances from seeds seed, seed + 1, …; `make_instance` draws one; the edge-time
distribution is a `Regime`, `RISK` or `STANDARD`). ``routing.FAMILY`` is the family for `surco.compare` (baselines as harness methods: LET,
mean–risk, local search and annealing over `PathDetour` moves, SCIP; see `family`);
SurCo-prior as a residual over the mean–risk cost (`train_prior`, see `prior`).
"""
from .baselines import (MAX_BRUTE_FORCE_N, RouteResult, brute_force, default_gammas,
                        let_path, mean_risk, scip_exact, simple_paths)
from .instances import (REGIMES, RISK, STANDARD, Instance, Regime, check_instance, generate,
                        grid_graph, grid_size, let_stats, make_instance, oracle)
from .neighbourhood import PathDetour
from .problem import (evaluate, features, make_problem, neg_log_prob, neg_prob, neg_z,
                      on_time_probability, late_probability, path_nodes, softplus_inverse, z_score, STARTS,
                      zero_multistart)
from .family import (BASELINES, EXACT, EXACT_DEFAULT_SECONDS, FAMILY, TRAIN_SEED,
                     ZERO_SETTINGS, ZERO_SETTINGS_NOTE, evaluate_batch, violations)
from .prior import (PRIOR_SETTINGS, distill_targets, init_prior, load_prior, mean_risk_theta,
                    train_prior)

__all__ = [
    "generate", "make_instance", "grid_graph", "grid_size", "oracle", "check_instance",
    "let_stats", "Instance", "Regime", "REGIMES", "STANDARD", "RISK", "make_problem", "z_score", "neg_z", "neg_log_prob", "neg_prob",
    "on_time_probability", "late_probability", "path_nodes", "features", "evaluate",
    "softplus_inverse",
    "RouteResult", "let_path", "mean_risk", "default_gammas", "brute_force", "simple_paths",
    "scip_exact", "MAX_BRUTE_FORCE_N", "zero_multistart", "STARTS", "PathDetour", "FAMILY", "BASELINES",
    "violations", "evaluate_batch", "EXACT", "ZERO_SETTINGS",
    "ZERO_SETTINGS_NOTE", "TRAIN_SEED", "EXACT_DEFAULT_SECONDS", "mean_risk_theta", "PRIOR_SETTINGS", "init_prior",
    "train_prior", "distill_targets", "load_prior",
]
