"""SurCo-prior (Ferber et al., ICML 2023, §3.2, Eq. 7): a network ĉ(features(y); θ) that
predicts the surrogate cost of an instance, trained over a set of instances by

    min_θ  Σ_y  f( g_Ω(y)( ĉ(y; θ) ), y )

through the same solver-plus-estimator path as SurCo-zero (no optimal solutions needed).
Prediction is one forward pass and one solve.

    prior = surco.prior.train(problem, train_instances, val_instances=val)
    prior.predict(instance)                      # a PriorResult
    prior.save("my_prior")                       # network class, fields, parameters, history
    prior = surco.prior.load("my_prior", problem)

Modules: `networks` (`CostNet`, `SetCostNet`), `model` (`PriorModel`: normalisation,
``theta`` / ``cost`` / ``predict``), `training` (`train`), `checkpoint` (the files of a
saved model and of a running training), `specs` (a network's class and fields as JSON).
"""
from surco.prior.checkpoint import load
from surco.prior.model import PriorModel
from surco.prior.networks import CostNet, SetCostNet
from surco.prior.training import train

__all__ = ["train", "load", "PriorModel", "CostNet", "SetCostNet"]
