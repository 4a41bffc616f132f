"""SurCo-prior's files: a saved model records its network (class and fields), solver settings
and history and loads back as itself; old checkpoints load; truncated or foreign files fail
with errors naming the file and what it should hold (issues 14, 15)."""
import json
from pathlib import Path
import re
import shutil
import warnings
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import surco
from surco.problems import assignment as A

N, M = 4, 2
PROB = A.make_problem(N, M)
KW = dict(estimator="blackbox", lam=10.0, batch_size=4, lr=1e-2, patience=None, key=1,
          backend="cpsat")


class ScaledNet(nn.Module):
    """A custom prior network with fields of several kinds (an int left to `train`, a
    tuple, a float, a function, a dtype)."""

    out: int | None = None
    hidden: tuple[int, ...] = (8,)
    scale: float = 1.0
    act: Callable = nn.gelu
    dtype: object = jnp.float32

    @nn.compact
    def __call__(self, z):
        h = z
        for w in self.hidden:
            h = self.act(nn.Dense(w, dtype=self.dtype)(h))
        return self.scale * nn.Dense(self.out, dtype=self.dtype)(h)


class ShiftedCostNet(surco.prior.CostNet):
    """`CostNet` plus a constant: the same parameters, another network."""

    shift: float = 0.0

    def __call__(self, z):
        return super().__call__(z) + self.shift


@pytest.fixture(scope="module")
def small():
    """A default-network prior trained 2 epochs with a validation set and solver options."""
    train, val = A.generate(8, seed=1, n=N, m=M), A.generate(4, seed=2, n=N, m=M)
    return surco.prior.train(PROB, train, val_instances=val, epochs=2, hidden=(8,),
                             solver_options={"time_limit": 30.0}, **KW)


def test_custom_module_loads_as_itself(tmp_path):
    train = A.generate(8, seed=3, n=N, m=M)
    pm = surco.prior.train(PROB, train, epochs=2,
                           model=ScaledNet(hidden=(8, 4), scale=2.5, act=nn.relu), **KW)
    assert pm.module.out == M  # filled in by train
    back = surco.prior.load(pm.save(tmp_path / "m"), PROB)  # no model=
    assert type(back.module) is ScaledNet
    assert (back.module.out, back.module.hidden, back.module.scale) == (M, (8, 4), 2.5)
    assert back.module.act is nn.relu and back.module.dtype is jnp.float32
    for y in A.generate(3, seed=4, n=N, m=M):
        np.testing.assert_array_equal(np.asarray(back.theta(y)), np.asarray(pm.theta(y)))
        np.testing.assert_array_equal(back.predict(y).x, pm.predict(y).x)


def test_sharding_residual_net_loads_as_itself(tmp_path):
    """Sharding's `PlanResidualNet` (a `CostNet` with a skip term) used to load as a plain
    `CostNet` without model=, dropping the skip: its plans changed silently."""
    from surco.problems.sharding.settings import prior_problem, train_prior
    from surco.problems.sharding.problem import PlanResidualNet
    from surco.problems.sharding.tables import generate_pool, split_pool
    from surco.problems.sharding.tasks import generate_tasks
    train_pool, _ = split_pool(generate_pool(0, 160), 0.5, seed=0)
    tasks = generate_tasks(train_pool, 12, 3, 3, seed=0)
    pm = train_prior(tasks, epochs=1)
    back = surco.prior.load(pm.save(tmp_path / "s"), prior_problem())
    assert type(back.module) is PlanResidualNet
    assert (back.module.skip, back.module.hidden, back.module.out) == (
        pm.module.skip, pm.module.hidden, 3)
    assert back.module.skip != 0 and back.backend == "highs"
    task = tasks[0]
    np.testing.assert_array_equal(np.asarray(back.theta(task)), np.asarray(pm.theta(task)))
    np.testing.assert_array_equal(back.predict(task).x, pm.predict(task).x)


def test_saved_model_keeps_history_backend_and_solver_options(small, tmp_path):
    back = surco.prior.load(small.save(tmp_path / "m"), PROB)
    assert back.history == small.history and len(back.history.train_f) == 2
    assert back.history.val_f == small.history.val_f and len(back.history.val_f) == 2
    assert (back.backend, back.solver_options, back.estimator) == ("cpsat", {"time_limit": 30.0},
                                                                   "blackbox")
    assert back.out_shape == (M,) and back.per_row and back.feature_shape == (N, 3 * M)


V1_PRIOR = Path(__file__).resolve().parent / "data" / "prior_v1_dlrm50_d4"


def test_v1_checkpoint_loads_and_serves_other_sizes():
    """A sharding prior saved in format surco-prior/1 (the checkpoint shipped before the
    format recorded the network class; a copy is kept in tests/surco/data) loads with
    model= as before, and without it (as a CostNet, with a warning); its normalisation
    (stored per row, 50 equal rows) becomes per column, so 60 tables work (other sizes:
    test_prior_sizes)."""
    from surco.problems.sharding.baselines import torchrec_greedy
    from surco.problems.sharding.settings import load_prior, prior_problem
    from surco.problems.sharding.problem import PlanResidualNet
    from surco.problems.sharding.tables import generate_pool, split_pool
    from surco.problems.sharding.tasks import generate_tasks, plan_violations
    meta = json.loads((V1_PRIOR / "meta.json").read_text())
    assert meta["format"] == "surco-prior/1" and np.shape(meta["feat_mean"]) == (50, 26)
    prior = load_prior(V1_PRIOR)
    assert type(prior.module) is PlanResidualNet and prior.history is None
    np.testing.assert_array_equal(prior.feat_mean, np.float32(meta["feat_mean"][0]))
    with pytest.warns(UserWarning, match="does not record the network class; loading it as "
                                         r"CostNet\(out=4, hidden=\(64, 64\)\)"):
        plain = surco.prior.load(V1_PRIOR, prior_problem())
    assert type(plain.module) is surco.prior.CostNet
    _, test_pool = split_pool(generate_pool(0, 200), 0.5, seed=0)
    task = generate_tasks(test_pool, 60, 4, 1, seed=1)[0]
    res = prior.predict(task)
    assert res.x.shape == (60, 4) and plan_violations(res.x, task) == []
    # the untrained residual net returns TorchRec's plan; trained at T = 50 it stays within
    # 1.25x of it at T = 60 (measured 0.99-1.14x on 5 tasks at each of T = 10, 30, 50, 60)
    assert res.true_cost <= 1.25 * prior.problem.evaluate(torchrec_greedy(task), task)


def test_shipped_checkpoint_loads_as_itself():
    """The shipped prior (format surco-prior/2, `ship_prior`) is a residual SetCostNet over
    cost-greedy's plan: it loads as itself with its base, and its plan is never worse than
    cost-greedy's on test tasks (training kept the untrained network when no epoch beat it
    on validation)."""
    from surco.problems.sharding.baselines import cost_greedy
    from surco.problems.sharding.settings import (SHIPPED_PRIOR, heuristic_theta, load_prior,
                                                  prior_problem)
    from surco.problems.sharding import evaluate_plan, generate
    meta = json.loads((SHIPPED_PRIOR / "meta.json").read_text())
    assert meta["format"] == "surco-prior/2"
    assert meta["base"] == {"__callable__": "surco.problems.sharding.settings:heuristic_theta"}
    shipped = surco.prior.load(SHIPPED_PRIOR, prior_problem())
    assert type(shipped.module) is surco.prior.SetCostNet and shipped.base is heuristic_theta
    again = load_prior()
    for task in generate(3, seed=1, n_tables=50, split="test"):
        x = shipped.predict(task).x
        np.testing.assert_array_equal(again.predict(task).x, x)
        assert evaluate_plan(x, task) <= evaluate_plan(cost_greedy(task), task) * (1 + 1e-6)


def test_model_argument_of_another_class_warns(small, tmp_path):
    path = small.save(tmp_path / "m")
    with pytest.warns(UserWarning, match="model= is test_prior_files:ShiftedCostNet.*saved "
                                         "with surco.prior.networks:CostNet"):
        shifted = surco.prior.load(path, PROB, model=ShiftedCostNet(out=M, hidden=(8,),
                                                                     shift=1.0))
    y = A.generate(1, seed=8, n=N, m=M)[0]
    np.testing.assert_allclose(np.asarray(shifted.theta(y)), np.asarray(small.theta(y)) + 1.0,
                               rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        surco.prior.load(path, PROB, model=surco.prior.CostNet(out=M, hidden=(8,)))


def test_unrecordable_network_field_fails_at_save(small, tmp_path):
    import dataclasses
    odd = dataclasses.replace(small, module=ScaledNet(out=M, act=lambda h: h))
    with pytest.raises(ValueError, match=r"ScaledNet.act = <function .*<lambda>.*cannot be "
                                         "recorded"):
        odd.save(tmp_path / "m")
    assert not (tmp_path / "m").exists()


def _data_file(directory: Path, manifest: str) -> Path:
    """The data file a saved unit's manifest names (``params_file`` / ``checkpoint_file``)."""
    meta = json.loads((directory / manifest).read_text())
    key = "params_file" if manifest == "meta.json" else "checkpoint_file"
    return directory / meta[key]


def _files(small, tmp_path):
    path = small.save(tmp_path / "m")
    return path, path / "meta.json", _data_file(path, "meta.json")


def test_truncated_or_foreign_model_files_name_the_file(small, tmp_path):
    path, meta, params = _files(small, tmp_path)
    good = params.read_bytes()
    params.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match=re.escape(str(params)) + ": truncated or not the "
                                         r"network parameters \(a flax msgpack\)"):
        surco.prior.load(path, PROB)
    # another model's parameters (other widths): the recorded SHA-256 tells them apart
    # width 4: its last layer (4 -> M) has the shape of ScaledNet's above, so its random
    # initialiser is compiled once for the module
    other = surco.prior.train(PROB, A.generate(4, seed=5, n=N, m=M), epochs=1, hidden=(4,), **KW)
    other.save(tmp_path / "other")
    shutil.copy(_data_file(tmp_path / "other", "meta.json"), params)
    with pytest.raises(ValueError, match=re.escape(str(params)) + ": not the file saved "
                                         r"with .*meta.json \(its SHA-256 differs"):
        surco.prior.load(path, PROB)
    # ... and without the digest, by the shapes
    m = json.loads(meta.read_text())
    del m["params_sha256"]
    meta.write_text(json.dumps(m))
    with pytest.raises(ValueError, match=re.escape(str(params)) + r": the parameters of CostNet: "
                                         r"\['params'\]\['Dense_0'\]\['bias'\] has shape \(4,\), "
                                         r"expected \(8,\)"):
        surco.prior.load(path, PROB)
    meta.write_text(json.dumps(m)[:40])
    with pytest.raises(ValueError, match=re.escape(str(meta)) + ": not the meta.json of a "
                                         "SurCo-prior model directory.*unreadable JSON"):
        surco.prior.load(path, PROB)
    meta.write_text('{"x_shape": [4, 2]}')
    with pytest.raises(ValueError, match=re.escape(str(meta)) + ": format None, expected "
                                         "'surco-prior/2'"):
        surco.prior.load(path, PROB)


def test_truncated_or_foreign_training_checkpoint_names_the_file(tmp_path):
    train = A.generate(8, seed=6, n=N, m=M)
    ck = tmp_path / "ck"
    surco.prior.train(PROB, train, epochs=1, hidden=(8,), checkpoint_dir=ck, **KW)
    state = _data_file(ck, "checkpoint.json")
    good = state.read_bytes()
    state.write_bytes(good[:100])
    with pytest.raises(ValueError, match=re.escape(str(state)) + ": truncated or not the "
                                         "checkpoint of a SurCo-prior training"):
        surco.prior.train(PROB, train, epochs=2, hidden=(8,), checkpoint_dir=ck, **KW)
    pm = surco.prior.train(PROB, train, epochs=1, hidden=(8,), **KW)
    model = _data_file(pm.save(tmp_path / "m"), "meta.json")
    shutil.copy(model, state)  # a model, not a checkpoint: the recorded SHA-256 tells
    with pytest.raises(ValueError, match=re.escape(str(state)) + ": not the file saved with "
                                         ".*checkpoint.json"):
        surco.prior.train(PROB, train, epochs=2, hidden=(8,), checkpoint_dir=ck, **KW)
    manifest = json.loads((ck / "checkpoint.json").read_text())
    (ck / "checkpoint.json").write_text(json.dumps({**manifest, "checkpoint_sha256": None}))
    with pytest.raises(ValueError, match=re.escape(str(state)) + r": not the checkpoint .*"
                                         r"entries \['opt_state', 'best_params'"):
        surco.prior.train(PROB, train, epochs=2, hidden=(8,), checkpoint_dir=ck, **KW)
    state.write_bytes(good)
    with pytest.raises(ValueError, match=re.escape(str(state)) + ": the optimizer state "
                                         r"\(is optimizer= the one it was saved with\?\)"):
        surco.prior.train(PROB, train, epochs=2, hidden=(8,), checkpoint_dir=ck,
                          optimizer=optax.sgd(0.1, momentum=0.9), **KW)
    (ck / "checkpoint.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=re.escape(str(ck / "checkpoint.json")) + ": not the "
                                         "checkpoint of a SurCo-prior training.*JSON list"):
        surco.prior.train(PROB, train, epochs=2, hidden=(8,), checkpoint_dir=ck, **KW)


def test_resume_below_the_checkpoint_epoch_warns(tmp_path):
    train = A.generate(8, seed=7, n=N, m=M)
    ck = tmp_path / "ck"
    first = surco.prior.train(PROB, train, epochs=3, hidden=(8,), checkpoint_dir=ck, **KW)
    with pytest.warns(UserWarning, match=r"has 3 completed epochs, more than epochs=2; nothing "
                                         "to train"):
        again = surco.prior.train(PROB, train, epochs=2, hidden=(8,), checkpoint_dir=ck, **KW)
    assert again.history.train_f == first.history.train_f
    y = train[0]
    np.testing.assert_array_equal(np.asarray(again.theta(y)), np.asarray(first.theta(y)))
    with warnings.catch_warnings():  # resuming a finished training at its own length: silent
        warnings.simplefilter("error")
        surco.prior.train(PROB, train, epochs=3, hidden=(8,), checkpoint_dir=ck, **KW)


def test_model_params_template_is_checked_against_network(small):
    """A network whose output does not fit x fails before training, naming model."""
    with pytest.raises(ValueError, match=r"model ScaledNet returns shape \(4, 3\) for features "
                                         r"\(4, 6\); expected 8 entries \(x has shape \(4, 2\)\)"):
        surco.prior.train(PROB, A.generate(2, n=N, m=M), model=ScaledNet(out=3), epochs=1, **KW)
    assert jax.tree.leaves(small.params)  # the fixture trained
