"""LANCER: learned landscape surrogates for combinatorial optimisation with nonlinear costs
(Zharmagambetov, Amos, Ferber, Huang, Dilkina, Tian, "Landscape Surrogate: Learning Decision
Losses for Mathematical Optimization Under Partial Information", NeurIPS 2023).

LANCER learns a smooth model M_w(c) of the true cost of the solver's answer g_Ω(c) and
alternates between fitting M_w on the (c, true cost) pairs collected so far and descending
the surrogate cost c through M_w, so that the true cost, which may be expensive (a
profiler, a simulator), is evaluated only for the few new solutions each round proposes.

    res = surco.lancer.lancer_zero(problem, instance, surco.Budget(evaluations=30).start(f))
    cmp = surco.compare(family, tasks, ["lancer", "surco-zero", "annealing"],
                        budget=surco.Budget(evaluations=30))
    model = surco.lancer.train(family, train_instances)       # LANCER over a predictor
    cmp = surco.compare(family, tasks, model.methods(), budget=surco.Budget(evaluations=30))

Only the meter's evaluations count, and by default LANCER-zero never computes the problem's
own f (f is the true cost, or ranks like it: the meter's values stand in for it), and
LANCER-prior's training computes it only on solutions it evaluates; ``free_f=True``
declares f a free proxy of the metered cost (a cost model judged by a profiler), which
LANCER may then compute on every solution it proposes (`surco.lancer.zero`).

Modules: `config` (`LancerConfig`: LANCER's own settings, checked once; SurCo-zero's
estimator, optimiser, start and solver come in a `surco.ZeroConfig`), `landscape` (the model
M_w and its fit), `zero` (LANCER-zero: c per instance,
`lancer_zero`, `lancer_method`, the per-family `SETTINGS`), `prior` (LANCER over a cost
predictor c = h_θ(y) trained on instances: `train`, `LancerModel`).
"""
from surco.lancer import landscape
from surco.lancer.config import LancerConfig
from surco.lancer.prior import LancerModel, train
from surco.lancer.zero import SETTINGS, SETTINGS_NOTES, LancerResult, lancer_method, lancer_zero

__all__ = ["landscape", "LancerConfig", "lancer_zero", "lancer_method", "LancerResult", "SETTINGS",
           "SETTINGS_NOTES", "train", "LancerModel"]
