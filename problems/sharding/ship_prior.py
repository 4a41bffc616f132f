"""Re-create the shipped SurCo-prior checkpoint (``data/prior_dlrm50_d4``).

    python -m surco.problems.sharding.ship_prior [--out DIR]

Trains `settings.train_prior` with ``residual=True`` (a `surco.prior.SetCostNet` residual
over cost-greedy's plan, `settings.heuristic_theta`: never worse than cost-greedy before
training, and early stopping keeps the epoch best on validation) on 50 DLRM-50 tasks from
the train half of the seed-0 pool (4 devices of 5 GB), early stopping on 10 more, and saves
it with its base.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def main(argv=None) -> Path:
    from .settings import SHIPPED_PRIOR, train_prior
    from .tables import generate_pool, split_pool
    from .tasks import generate_tasks

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=SHIPPED_PRIOR)
    args = p.parse_args(argv)
    train_pool, _ = split_pool(generate_pool(0), 0.5, seed=0)
    train = generate_tasks(train_pool, 50, 4, 50, seed=0)
    val = generate_tasks(train_pool, 50, 4, 10, seed=7)
    prior = train_prior(train, val_tasks=val, progress=True, residual=True)
    path = prior.save(args.out)
    print(f"saved SurCo-prior to {path} (best epoch {prior.history.best_epoch}, "
          f"val f {min(prior.history.val_f):.4f})")
    return path


if __name__ == "__main__":
    main()
