"""SurCo-zero's answers on the training instances, as distillation targets for SurCo-prior
(`surco.prior.train(..., distill=...)`), computed on any ``concurrent.futures.Executor``."""
from __future__ import annotations

from concurrent.futures import Executor
from typing import Any, Sequence

from surco.problem import Instance, Problem
from surco.results import ZeroResult


def zero_targets(problem: Problem, instances: Sequence[Instance], *,
                 executor: Executor | None = None, **zero_kwargs: Any) -> list[ZeroResult]:
    """Run SurCo-zero (Ferber et al., ICML 2023, Alg. 1) on each instance, one run per
    instance, for distillation (`surco.prior.train`'s ``distill``).

    Args:
      problem: the `Problem`.
      instances: a list or tuple of instances.
      executor: None (one run after the other, here), or any executor: a thread or process
        pool, or a cluster's (``dask.distributed.Client.get_executor()``); each run is one
        task. With a fixed ``key`` the runs are deterministic, so they equal the serial ones
        whatever the executor.
      **zero_kwargs: keyword arguments of `surco.zero`; ``init`` may also be a function
        ``instance -> θ0`` (as in a family's ``zero_settings``), called here per instance.

    Returns:
      One `ZeroResult` per instance, in order (``theta`` is the target).

    Raises:
      TypeError: ``instances`` is not a list or tuple, or a keyword that `surco.zero` and
        the estimator do not take (with the closest valid name).
      Whatever `surco.zero` raises on an instance (the other runs are cancelled).
      KeyboardInterrupt: Ctrl-C; runs not started are cancelled.
    """
    if type(instances) not in (list, tuple):
        raise TypeError(f"zero_targets: instances must be a list or tuple, got "
                        f"{type(instances).__name__}")
    from surco.config import check_zero_settings
    check_zero_settings("surco.prior.zero_targets", zero_kwargs)   # a misspelt keyword
    init = zero_kwargs.pop("init", "random")
    jobs = [(y, init(y) if callable(init) else init) for y in instances]
    if executor is None:
        return [_zero_one(problem, y, i0, zero_kwargs) for y, i0 in jobs]
    futures = [executor.submit(_zero_one, problem, y, i0, zero_kwargs) for y, i0 in jobs]
    try:
        return [f.result() for f in futures]
    except BaseException:
        for f in futures:
            f.cancel()
        raise


def _zero_one(problem: Problem, instance: Instance, init: Any, kwargs: dict) -> ZeroResult:
    from surco.driver import zero
    return zero(problem, instance, init=init, **kwargs)
