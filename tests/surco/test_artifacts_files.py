"""Saved artifacts round-trip and are found where they were saved (issue 23): ``load(p)``
reads what ``save(p)`` wrote (``.npz`` appended, never substituted), overwriting is
explicit, random contents of every kind load back equal, a file truncated at any byte
fails with a ValueError naming it (never a silent wrong load), and directories saved in
the layout before issue 23 still load.

On the code before issue 23 the symmetry tests fail: ``save("x")`` wrote ``x.npz`` that
``load("x")`` did not find, ``save("run.a")`` and ``save("run.b")`` both wrote ``run.npz``,
and ``save`` had no ``overwrite``; `surco.report.read` did not exist.
"""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import surco
from surco.outcome import StopReason
from surco.prior.checkpoint import TrainingCheckpoint
from surco.report import Report, read as read_report
from surco.results import PriorResult, TrainHistory, ZeroResult

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import artifact_kinds as K  # noqa: E402

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


# -- load(p) reads what save(p) wrote --------------------------------------------------------
def test_save_and_load_take_the_same_path(tmp_path):
    r = K.prior_result(0)
    assert r.save(tmp_path / "x") == tmp_path / "x.npz"
    assert K.same_record(PriorResult.load(tmp_path / "x"), r)
    assert K.same_record(PriorResult.load(tmp_path / "x.npz"), r)
    assert r.save(str(tmp_path / "y.npz")) == tmp_path / "y.npz"  # not y.npz.npz
    assert K.same_record(PriorResult.load(str(tmp_path / "y.npz")), r)


def test_a_suffix_is_appended_never_substituted(tmp_path):
    a, b = K.prior_result(0), K.prior_result(1)
    assert a.save(tmp_path / "run.a") == tmp_path / "run.a.npz"
    assert b.save(tmp_path / "run.b") == tmp_path / "run.b.npz"
    assert sorted(os.listdir(tmp_path)) == ["run.a.npz", "run.b.npz"]
    assert K.same_record(PriorResult.load(tmp_path / "run.a"), a)
    assert K.same_record(PriorResult.load(tmp_path / "run.b"), b)
    with pytest.raises(FileNotFoundError, match=r"run\.npz: no such file"):
        PriorResult.load(tmp_path / "run")


def test_overwriting_a_result_is_explicit(tmp_path):
    p = K.prior_result(0).save(tmp_path / "r")
    before = p.read_bytes()
    with pytest.raises(FileExistsError,
                       match=re.escape(f"{p}: already exists (overwrite=False)")):
        K.prior_result(1).save(tmp_path / "r", overwrite=False)
    assert p.read_bytes() == before and os.listdir(tmp_path) == ["r.npz"]
    K.prior_result(1).save(tmp_path / "r")  # the default replaces it
    assert K.same_record(PriorResult.load(p), K.prior_result(1))
    assert K.prior_result(0).save(tmp_path / "new", overwrite=False).exists()


def test_overwriting_a_model_is_explicit(tmp_path):
    d = K.prior_model(0).save(tmp_path / "m")
    before = {n: (d / n).read_bytes() for n in os.listdir(d)}
    with pytest.raises(FileExistsError,
                       match=re.escape(f"{d}: holds a saved model") + ".*overwrite=False"):
        K.prior_model(1).save(d, overwrite=False)
    assert {n: (d / n).read_bytes() for n in os.listdir(d)} == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("no model here yet")
    K.prior_model(1).save(tmp_path / "other", overwrite=False)  # a folder without a model
    assert K.same_model(surco.prior.load(tmp_path / "other", K.toy_problem()),
                        K.prior_model(1))
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=r"file is a file; a model is saved to a directory"):
        K.prior_model(0).save(tmp_path / "file")


def test_directories_of_the_layout_before_content_addressing_load_and_are_upgraded(tmp_path):
    """meta.json + params.msgpack (the shipped models), checkpoint.json +
    checkpoint.msgpack: rewritten to that layout from a fresh save, they load; a new save
    removes the fixed-name file."""
    for kind, d, manifest, name in [
            ("prior_model", tmp_path / "m", "meta.json", "params.msgpack"),
            ("training_checkpoint", tmp_path / "ck", "checkpoint.json", "checkpoint.msgpack")]:
        k = K.KINDS[kind]()
        k.save(0, d)
        meta = json.loads((d / manifest).read_text())
        stem = name.split(".")[0]
        (d / meta.pop(f"{stem}_file")).rename(d / name)
        del meta[f"{stem}_sha256"]
        (d / manifest).write_text(json.dumps(meta))
        assert k.same(k.load(d), 0), kind
        k.save(1, d)
        assert set(os.listdir(d)) == k.files(d) and name not in os.listdir(d)
        assert k.same(k.load(d), 1), kind


def test_a_manifest_naming_a_file_elsewhere_is_refused(tmp_path):
    d = K.prior_model(0).save(tmp_path / "m")
    meta = json.loads((d / "meta.json").read_text())
    (d / "meta.json").write_text(json.dumps({**meta, "params_file": "../x.msgpack"}))
    with pytest.raises(ValueError, match=r"meta.json: params_file is '\.\./x\.msgpack', "
                                         "expected 'params.msgpack' or a content-addressed"):
        surco.prior.load(d, K.toy_problem())


# -- random contents round-trip ---------------------------------------------------------------
FLOAT = st.floats(allow_nan=False, allow_infinity=False)
TEXT = st.text(max_size=12)
JSON_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-2**53, 2**53), FLOAT, TEXT)


@st.composite
def arrays(draw, max_dims: int = 3):
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int64, np.int8, np.bool_]))
    elements = (st.floats(allow_nan=False, allow_infinity=False,
                          width=np.dtype(dtype).itemsize * 8)
                if np.issubdtype(dtype, np.floating) else None)
    return draw(hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=max_dims, max_side=4),
                           elements=elements))


RECORDS = {
    ZeroResult: st.builds(
        ZeroResult, x=arrays(), f=FLOAT, true_cost=st.none() | FLOAT, c=arrays(), theta=arrays(),
        history=st.dictionaries(TEXT, st.lists(FLOAT, max_size=5), max_size=4),
        best_step=st.integers(0, 10**6), seconds=FLOAT, solver_seconds=FLOAT,
        solver_calls=st.integers(0, 10**6), problem=TEXT, estimator=TEXT,
        stopped=st.sampled_from(list(StopReason)), error=st.none() | TEXT),
    PriorResult: st.builds(PriorResult, x=arrays(), f=FLOAT, true_cost=st.none() | FLOAT,
                           c=arrays(), seconds=FLOAT, problem=TEXT),
    TrainHistory: st.builds(TrainHistory, train_f=st.lists(FLOAT, max_size=6),
                            val_f=st.lists(FLOAT, max_size=6), seconds=st.lists(FLOAT, max_size=6),
                            best_epoch=st.integers(0, 100), stopped_early=st.booleans()),
}


@pytest.mark.parametrize("cls", list(RECORDS), ids=lambda c: c.__name__)
@SETTINGS
@given(data=st.data())
def test_records_round_trip(cls, data, tmp_path):
    r = data.draw(RECORDS[cls])
    name = data.draw(st.sampled_from(["r", "r.npz", "run.a", "a b.c"]))
    assert K.same_record(cls.load(r.save(tmp_path / name)), r)
    assert K.same_record(cls.load(tmp_path / name), r)


def _f32(shape):
    return hnp.arrays(np.float32, shape, elements=st.floats(-1e6, 1e6, width=32))


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_prior_models_round_trip(data, tmp_path):
    problem = K.toy_problem()
    feats, width = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4))
    params = {"params": {"Dense_0": {"kernel": data.draw(_f32((2 * feats, width))),
                                     "bias": data.draw(_f32((width,)))},
                         "Dense_1": {"kernel": data.draw(_f32((width, K.N_OUT))),
                                     "bias": data.draw(_f32((K.N_OUT,)))}}}
    hist = data.draw(st.none() | RECORDS[TrainHistory])
    pm = surco.PriorModel(
        problem=problem, module=surco.prior.CostNet(out=K.N_OUT, hidden=(width,)),
        params=params, feat_mean=data.draw(_f32((feats,))), feat_std=data.draw(_f32((feats,))),
        out_shape=(K.N_OUT,), per_row=True, feature_shape=(K.N_ROWS, feats),
        estimator=data.draw(TEXT), backend=data.draw(st.none() | TEXT),
        solver_options=data.draw(st.none() | st.dictionaries(TEXT, JSON_SCALAR, max_size=3)),
        history=hist)
    back = surco.prior.load(pm.save(tmp_path / "m"), problem)
    assert K.same_tree(back.params, pm.params) and back.history == pm.history
    assert np.array_equal(back.feat_mean, pm.feat_mean)
    assert np.array_equal(back.feat_std, pm.feat_std)
    assert (back.estimator, back.backend, back.solver_options) == (
        pm.estimator, pm.backend, pm.solver_options)


@SETTINGS
@given(data=st.data())
def test_training_checkpoints_round_trip(data, tmp_path):
    shapes = data.draw(st.lists(hnp.array_shapes(min_dims=0, max_dims=2, max_side=3),
                                min_size=1, max_size=3))
    params = {f"w{i}": data.draw(_f32(s)) for i, s in enumerate(shapes)}
    epoch = data.draw(st.integers(0, 5))
    state = {"params": params, "best_params": {k: v + 1 for k, v in params.items()},
             "opt_state": {"mu": {k: v * 2 for k, v in params.items()}},
             "key": np.array(data.draw(st.lists(st.integers(0, 2**32 - 1), min_size=2,
                                                max_size=2)), np.uint32),
             "epoch": epoch, "best_val": data.draw(FLOAT), "stall": data.draw(st.integers(0, 9)),
             "best_epoch": data.draw(st.integers(0, 5)),
             "train_f": data.draw(st.lists(FLOAT, min_size=epoch + 1, max_size=epoch + 1)),
             "val_f": data.draw(st.lists(FLOAT, max_size=6)),
             "seconds": data.draw(st.lists(FLOAT, max_size=6))}
    meta = {"problem": data.draw(TEXT), "n_train": data.draw(st.integers(1, 100))}
    TrainingCheckpoint(tmp_path / "ck", meta).save(state)
    assert K.same_state(TrainingCheckpoint(tmp_path / "ck", meta).restore(state), state)


_RESERVED = {"bench", "quick", "machine", "commit", "started", "seconds", "rows", "targets"}


@SETTINGS
@given(data=st.data())
def test_bench_reports_round_trip(data, tmp_path):
    rows = data.draw(st.lists(st.dictionaries(TEXT, JSON_SCALAR, max_size=4), max_size=5))
    targets = data.draw(st.lists(st.tuples(TEXT, FLOAT, st.sampled_from(["<=", ">="]), FLOAT),
                                 max_size=3))
    extra = data.draw(st.dictionaries(TEXT.filter(lambda k: k not in _RESERVED), JSON_SCALAR,
                                      max_size=3))
    rep = Report(data.draw(TEXT), data.draw(st.booleans()), path=tmp_path / "b.json")
    for r in rows:
        rep.row(**r)
    for t in targets:
        rep.target(*t)
    rep.extra.update(extra)
    out = read_report(rep.finish(quiet=True))
    assert (out["bench"], out["quick"], out["rows"]) == (rep.bench, rep.quick, rows)
    assert out["targets"] == [dict(zip(("name", "value", "op", "target"), t)) for t in targets]
    assert {k: out[k] for k in extra} == extra


def test_comparison_json_round_trips(tmp_path):
    cmp = K.comparison(1, n=4)
    out = read_report(cmp.write_json(tmp_path / "c.json", bench="atomic", quick=False))
    assert [(r["method"], r["instance"], r["value"]) for r in out["runs"]] == [
        (r.method, r.instance, r.value) for r in cmp.runs]
    assert (out["bench"], out["quick"]) == ("atomic", False)


# -- truncation at every byte -------------------------------------------------------------------
def _truncations(path: Path, load, same) -> int:
    """Cut ``path`` at every byte and load; each must raise a ValueError naming ``path``
    or (a cut that removed only trailing whitespace) load the same content. Restores the
    file; returns how many cuts loaded."""
    good = path.read_bytes()
    loaded = 0
    try:
        for n in range(len(good)):
            path.write_bytes(good[:n])
            try:
                got = load()
            except ValueError as exc:
                assert str(path) in str(exc), (n, str(exc))
                continue
            assert same(got) and not good[n:].strip(), f"cut at byte {n} of {path} loaded"
            loaded += 1
    finally:
        path.write_bytes(good)
    return loaded


def test_truncated_result_files_fail_naming_the_file(tmp_path):
    h = {"f": [1.0, 0.5], "best_f": [1.0, 0.5]}
    r = ZeroResult(x=np.eye(2), f=0.5, true_cost=None, c=np.ones((2, 2)), theta=np.ones((2, 2)),
                   history=h, best_step=1, seconds=0.1, solver_seconds=0.05, solver_calls=2,
                   problem="toy", estimator="blackbox")
    p = r.save(tmp_path / "z")
    assert _truncations(p, lambda: ZeroResult.load(p), lambda g: K.same_record(g, r)) == 0


def test_truncated_model_files_fail_naming_the_file(tmp_path):
    problem = K.toy_problem()
    net = surco.prior.CostNet(out=K.N_OUT, hidden=(2,))
    params = {"params": {"Dense_0": {"kernel": np.ones((2, 2), np.float32),
                                     "bias": np.zeros(2, np.float32)},
                         "Dense_1": {"kernel": np.ones((2, K.N_OUT), np.float32),
                                     "bias": np.zeros(K.N_OUT, np.float32)}}}
    pm = surco.PriorModel(problem=problem, module=net, params=params, feat_mean=np.zeros(1),
                          feat_std=np.ones(1), out_shape=(K.N_OUT,), per_row=True,
                          feature_shape=(K.N_ROWS, 1), estimator="blackbox")
    d = pm.save(tmp_path / "m")
    meta = json.loads((d / "meta.json").read_text())
    for f in (d / "meta.json", d / meta["params_file"]):
        assert _truncations(f, lambda: surco.prior.load(d, problem),
                            lambda g: K.same_tree(g.params, params)) == 0


def test_truncated_checkpoint_files_fail_naming_the_file(tmp_path):
    state = {"params": {"w": np.ones(2, np.float32)}, "best_params": {"w": np.ones(2, np.float32)},
             "opt_state": {"mu": {"w": np.zeros(2, np.float32)}},
             "key": np.array([1, 2], np.uint32), "epoch": 0, "best_val": 1.0, "stall": 0,
             "best_epoch": 0, "train_f": [1.0], "val_f": [], "seconds": [0.1]}
    ck = TrainingCheckpoint(tmp_path / "ck", {"problem": "toy"})
    ck.save(state)
    meta = json.loads(ck.json_file.read_text())
    for f in (ck.json_file, ck.dir / meta["checkpoint_file"]):
        assert _truncations(f, lambda: ck.restore(state),
                            lambda g: K.same_state(g, state)) == 0


def test_truncated_bench_report_fails_naming_the_file(tmp_path):
    rep = Report("tiny", True, path=tmp_path / "b.json")
    rep.row(method="a", value=1.5)
    rep.target("t", 1.5, "<=", 2.0)
    p = rep.finish(quiet=True)
    good = read_report(p)
    # only the cut of the final newline loads, as the same report
    assert _truncations(p, lambda: read_report(p), lambda g: g == good) == 1
    p.write_text('{"bench": "x"}')
    with pytest.raises(ValueError,
                       match=re.escape(f"{p}: not a benchmark report") + r".*keys \['quick'"):
        read_report(p)
    with pytest.raises(FileNotFoundError, match=r"nope\.json: no such file"):
        read_report(tmp_path / "nope.json")
