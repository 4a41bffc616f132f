"""SurCo-prior (Ferber et al., ICML 2023, §3.2, Eq. 7): a network ĉ(features(y); θ) that
predicts the surrogate cost of an instance, trained over a set of instances by

    min_θ  Σ_y  f( g_Ω(y)( ĉ(y; θ) ), y )

through the same solver-plus-estimator path as SurCo-zero (no optimal solutions needed).
Prediction is one forward pass and one solve.

    prior = surco.prior.train(problem, train_instances, val_instances=val)
    prior.predict(instance)                      # a PriorResult
    prior.save("my_prior")                       # network class, fields, parameters, history
    prior = surco.prior.load("my_prior", problem)

Beyond Eq. 7: a *residual* prior over a cost the problem supplies (``train(...,
base=heuristic)``: the untrained prior reproduces the heuristic), *distillation* from
SurCo-zero's answers on the training instances (``train(..., distill=zero_targets(...))``,
the zero runs on any executor), *robust prediction* (``predict(y, candidates=k)``: the best
by f of a few candidate costs, one batched solve) and SurCo-hybrid's start from the better
of prior and heuristic (`hybrid_start`, `steps_to_reach`).

Modules: `networks` (`CostNet`, `SetCostNet`), `model` (`PriorModel`: normalisation,
``theta`` / ``cost`` / ``predict``), `training` (`train`, over a `surco.TrainConfig`), `data` (the
training instances, their features and minibatches), `checkpoint` (the files of a
saved model and of a running training), `loading` (`load`), `specs` (a network's class and fields as JSON), `distill` (`zero_targets`), `start`
(`hybrid_start`, `steps_to_reach`).
"""
from surco.prior.loading import load
from surco.prior.distill import zero_targets
from surco.prior.model import PriorModel
from surco.prior.networks import CostNet, SetCostNet
from surco.prior.start import hybrid_start, steps_to_reach
from surco.prior.training import init, train

__all__ = ["train", "init", "load", "PriorModel", "CostNet", "SetCostNet", "zero_targets",
           "hybrid_start", "steps_to_reach"]
