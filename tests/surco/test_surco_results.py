"""Result files name their path and what was expected; old files load; reprs stay short."""
from __future__ import annotations

import json

import numpy as np
import pytest

import surco
from surco.results import PriorResult, TrainHistory, ZeroResult


def _zero_result(steps: int = 10_000) -> ZeroResult:
    h = {k: [float(i) for i in range(steps)] for k in ("f", "best_f", "seconds", "solver_seconds")}
    h["solver_calls"] = list(range(steps))
    return ZeroResult(x=np.eye(3), f=1.5, true_cost=None, c=np.ones((3, 3)), theta=np.ones((3, 3)),
                      history=h, best_step=7, seconds=2.0, solver_seconds=1.0, solver_calls=3,
                      problem="toy", estimator="blackbox", stopped="patience")


def test_roundtrip_keeps_every_field(tmp_path):
    r = _zero_result(20)
    q = ZeroResult.load(r.save(tmp_path / "r"))
    assert q.stopped == "patience" and q.history == r.history and np.array_equal(q.x, r.x)
    assert not q.interrupted


def test_file_saved_before_the_stopped_field_loads_with_its_default(tmp_path):
    r = _zero_result(5)
    p = r.save(tmp_path / "old")
    with np.load(p) as z:
        meta = json.loads(bytes(z["__meta__"]).decode())
        arrays = {k: z[k] for k in z.files if k != "__meta__"}
    del meta["stopped"]
    np.savez(p, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    q = ZeroResult.load(p)
    assert q.stopped == "steps" and q.f == 1.5 and q.best_step == 7


def test_other_class_is_named_not_none(tmp_path):
    p = _zero_result(5).save(tmp_path / "z")
    with pytest.raises(ValueError, match=r"z\.npz: holds a ZeroResult, not a PriorResult"):
        PriorResult.load(p)


@pytest.mark.parametrize("content,why", [
    (b"PK\x03\x04 truncated", "not a ZeroResult file"),
    (b"hello, not numpy", "not a ZeroResult file"),
])
def test_broken_files_name_the_path_and_what_was_expected(tmp_path, content, why):
    p = tmp_path / "broken.npz"
    p.write_bytes(content)
    with pytest.raises(ValueError, match=rf"broken\.npz: {why} \(\.npz written by ZeroResult\.save\)"):
        ZeroResult.load(p)


def test_truncated_and_foreign_npz(tmp_path):
    good = _zero_result(50).save(tmp_path / "good")
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"cut\.npz: not a ZeroResult file"):
        ZeroResult.load(cut)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.ones(3))
    with pytest.raises(ValueError, match=r"foreign\.npz: not a ZeroResult file .*without the "
                                         r"__meta__ record \(holds \['weights'\]\)"):
        ZeroResult.load(foreign)
    with pytest.raises(FileNotFoundError, match=r"missing\.npz: no such file; expected a ZeroResult"):
        ZeroResult.load(tmp_path / "missing.npz")
    # a required field missing from the record
    with np.load(good) as z:
        meta = json.loads(bytes(z["__meta__"]).decode())
        arrays = {k: z[k] for k in z.files if k != "__meta__"}
    del meta["f"]
    np.savez(tmp_path / "nof.npz", __meta__=np.frombuffer(json.dumps(meta).encode(), np.uint8),
             **arrays)
    with pytest.raises(ValueError, match=r"nof\.npz: not a ZeroResult file .*field 'f' is missing"):
        ZeroResult.load(tmp_path / "nof.npz")


def test_reprs_are_short():
    r = _zero_result(10_000)
    text = repr(r)
    assert len(text) < 600, len(text)
    assert text.startswith("ZeroResult(x=array(shape=(3, 3), dtype=float64), f=1.5, ")
    assert "history={'f': [10000], 'best_f': [10000]" in text and "stopped='patience'" in text
    th = TrainHistory(train_f=list(range(500)), val_f=[], seconds=list(range(500)), best_epoch=3,
                      stopped_early=False)
    assert repr(th) == ("TrainHistory(train_f=[500 values], val_f=[], seconds=[500 values], "
                        "best_epoch=3, stopped_early=False)")
    pr = PriorResult(x=np.zeros((4, 2)), f=0.25, true_cost=1.0, c=np.zeros((4, 2)), seconds=0.1,
                     problem="toy")
    assert repr(pr) == ("PriorResult(x=array(shape=(4, 2), dtype=float64), f=0.25, true_cost=1, "
                        "c=array(shape=(4, 2), dtype=float64), seconds=0.1, problem='toy')")
