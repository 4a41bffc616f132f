"""The result store of the harness (`surco.store`, ``compare(..., store=, executor=)``):
runs written as they finish, a rerun that skips them, a killed comparison that resumes
without recomputing a finished run, and executors that give the serial results."""
from __future__ import annotations

import copy
import json
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import surco
from surco.budget import Budget
from surco.problems import assignment as A
import surco.runs
from surco.runs import Run
from surco.store import RunStore, append_json_line, instance_hash, read_json_lines

FAM = A.FAMILY
INSTS = FAM.generate(3, seed=11, n=6, m=3)
METHODS = ["mean-cost", "local-search-first", "annealing"]
BUDGET = Budget(evaluations=25)


def _same(a: surco.Comparison, b: surco.Comparison) -> None:
    """Equal runs, value for value (evaluation budgets make every method deterministic)."""
    assert a.methods == b.methods and a.n_instances == b.n_instances
    assert [(r.method, r.instance) for r in a.runs] == [(r.method, r.instance) for r in b.runs]
    for r, s in zip(a.runs, b.runs):
        assert (r.value, r.evaluations, r.status) == (s.value, s.evaluations, s.status)
        np.testing.assert_array_equal(r.x, s.x)
        assert [p[0::2] for p in r.curve] == [p[0::2] for p in s.curve]


def test_records_round_trip_and_a_partial_last_line_is_cut(tmp_path):
    s = RunStore(tmp_path / "runs.jsonl")
    run = Run("m", 2, np.eye(2), 0.5, 1.25, 3, "budget", None, [(1, 0.1, 0.9), (3, 1.2, 0.5)],
              Budget(seconds=2.0, evaluations=3, eval_cost=0.1), 0.95, True, "h", 0.3)
    k = s.key("fam", "m", 2, {"a": np.arange(3.0)}, run.budget, "T=5")
    s.put(k, run, family="fam", setting="T=5")
    back = RunStore(s.path).get(k)
    assert back.budget == run.budget and back.curve == run.curve
    np.testing.assert_array_equal(back.x, run.x)
    assert (back.value, back.seconds, back.status, back.cut_off, back.host) == \
        (0.5, 1.25, "budget", True, "h")
    # a writer killed mid-line: readers skip the partial line, the next writer cuts it off
    with open(s.path, "ab") as fh:
        fh.write(b'{"format": "surco-runs/1", "key": "half')
    s2 = RunStore(s.path)
    assert len(s2) == 1
    k2 = s2.key("fam", "m", 3, {"a": np.arange(3.0)}, run.budget, "T=5")
    s2.put(k2, run, family="fam", setting="T=5")
    lines = s.path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(json.loads(x)["format"] == "surco-runs/1" for x in lines[:-1])
    assert len(RunStore(s.path)) == 2


def test_an_append_waits_for_another_writers_lock(tmp_path):
    """Several processes may append to one store (the photonics bench's workers do): `put`
    takes an exclusive flock, so it never writes, or cuts a 'partial' line, while another
    writer holds the file."""
    import fcntl
    import threading
    s = RunStore(tmp_path / "runs.jsonl")
    run = Run("m", 0, np.zeros(2), 0.5, 1.0, 3, "budget", None, [], BUDGET)
    s.put(s.key("fam", "m", 0, {"i": 0}, BUDGET), run, family="fam")
    before = s.path.read_bytes()
    with open(s.path, "ab") as other:                    # another writer, mid-line
        fcntl.flock(other.fileno(), fcntl.LOCK_EX)
        other.write(b'{"format": "surco-runs/1", "key": "half')
        other.flush()
        t = threading.Thread(target=s.put, args=(s.key("fam", "m", 1, {"i": 1}, BUDGET), run),
                             kwargs={"family": "fam"})
        t.start()
        t.join(0.5)
        assert t.is_alive(), "put wrote while another writer held the lock"
        assert s.path.read_bytes().startswith(before)
        other.write(b'"}\n')                            # the other writer ends its line
        other.flush()
        fcntl.flock(other.fileno(), fcntl.LOCK_UN)
    t.join(60)
    assert not t.is_alive()
    lines = s.path.read_bytes().split(b"\n")
    assert len(lines) == 4 and lines[1] == b'{"format": "surco-runs/1", "key": "half"}'
    assert len(RunStore(s.path)) == 3                    # both puts and the other's record


def test_a_corrupt_line_is_named(tmp_path):
    p = tmp_path / "runs.jsonl"
    p.write_text('{"format": "surco-runs/1", "key": "a", "run": {}}\nnot json\n')
    with pytest.raises(ValueError, match=r"runs.jsonl, line 2: not a run record"):
        RunStore(p)


def test_json_lines_helpers_skip_blank_and_partial_lines_and_refuse_nan(tmp_path):
    """The one JSON Lines reader/appender (the run store and bench.scale's settings file)."""
    p = tmp_path / "sub" / "x.jsonl"
    append_json_line(p, {"a": 1})                        # creates the folder
    with open(p, "ab") as fh:
        fh.write(b"\n[2, 3]\n{\"half")                   # a blank line, a list, a partial line
    assert list(read_json_lines(p, "thing")) == [(1, {"a": 1}), (3, [2, 3])]
    append_json_line(p, "s")                             # cuts the partial line off first
    assert p.read_bytes() == b'{"a": 1}\n\n[2, 3]\n"s"\n'
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        append_json_line(p, {"v": float("nan")})
    assert p.read_bytes().endswith(b'"s"\n')             # nothing written
    p.write_bytes(b'{"a": 1}\n{oops}\n')
    with pytest.raises(ValueError, match=r"x.jsonl, line 2: not a thing \("):
        list(read_json_lines(p, "thing"))


def test_keys_change_with_the_instance_content_and_the_budget():
    y = INSTS[0]
    k = RunStore.key("f", "m", 0, y, BUDGET)
    assert k == RunStore.key("f", "m", 0, y, BUDGET)
    assert instance_hash(y) == instance_hash(copy.deepcopy(y))
    assert k != RunStore.key("f", "m", 0, INSTS[1], BUDGET)
    assert k != RunStore.key("f", "m", 0, y, Budget(evaluations=26))
    assert k != RunStore.key("f", "m", 0, y, Budget(evaluations=25, eval_cost=0.01))
    assert k != RunStore.key("f", "m", 0, y, BUDGET, setting="n=6")


def test_the_content_hash_is_blind_to_last_bit_differences_only():
    """A generator whose BLAS or LP solves round differently on another CPU gives the same
    key; a change in the 6th significant digit, a dtype or a shape does not."""
    mu = np.random.default_rng(0).uniform(-5, 5, 50)
    y = {"mu": mu, "deadline": np.float64(41.3), "n": 10}
    h = instance_hash(y)
    ulps = {"mu": mu * (1 + 4e-16), "deadline": np.nextafter(np.float64(41.3), 0), "n": 10}
    assert instance_hash(ulps) == h
    assert instance_hash(ulps, exact=True) != instance_hash(y, exact=True)
    moved = dict(y, mu=mu.copy())
    moved["mu"][7] *= 1 + 1e-5
    assert instance_hash(moved) != h
    assert instance_hash(dict(y, mu=mu.astype(np.float32))) != h
    assert instance_hash(dict(y, mu=mu[:-1])) != h
    assert instance_hash(dict(y, n=11)) != h
    # a mantissa that rounds up to the next power of two
    assert instance_hash(np.array([np.nextafter(1.0, 0)])) == instance_hash(np.array([1.0]))
    assert instance_hash(np.array([-np.nextafter(2.0, 0)])) == instance_hash(np.array([-2.0]))
    assert instance_hash(np.array([1.0])) != instance_hash(np.array([-1.0]))
    # non-finite values stand for themselves; complex values are rounded part by part
    assert len({instance_hash(np.array([v])) for v in (np.inf, -np.inf, np.nan, 0.0)}) == 4
    z = mu + 1j * mu[::-1]
    assert instance_hash(z * (1 + 4e-16)) == instance_hash(z) != instance_hash(z.conj())


def test_a_store_written_with_exact_hashes_is_still_resumed(tmp_path, monkeypatch):
    """Records keyed by the exact (unrounded) content hash, as written before hashes were
    rounded, are found: nothing is computed again, and new runs get the rounded key."""
    path = tmp_path / "runs.jsonl"
    first = surco.compare(FAM, INSTS, METHODS[:2], budget=BUDGET, store=path, progress=False)
    old = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        key = json.loads(rec["key"])
        assert key[4] == instance_hash(INSTS[key[3]])
        key[4] = instance_hash(INSTS[key[3]], exact=True)
        assert key[4] != instance_hash(INSTS[key[3]])       # these instances have floats
        rec["key"] = json.dumps(key)
        old.append(json.dumps(rec))
    path.write_text("\n".join(old) + "\n")
    calls = []
    real = surco.runs.run_one
    monkeypatch.setattr(surco.runs, "run_one", lambda *a: calls.append(a[1]) or real(*a))
    again = surco.compare(FAM, INSTS, METHODS, budget=BUDGET, store=path, progress=False)
    assert calls == [METHODS[2]] * len(INSTS)                # the third method's runs only
    _same(first, surco.Comparison(first.family, [r for r in again.runs
                                                 if r.method in METHODS[:2]],
                                  METHODS[:2], len(INSTS), first.reference, sense=first.sense))
    store = RunStore(path)
    assert len(store) == len(METHODS) * len(INSTS)
    fresh = [json.loads(r["key"])[4] for r in store.records() if r["run"]["method"] == METHODS[2]]
    assert fresh == [instance_hash(y) for y in INSTS]
    _same(again, surco.Comparison.from_store(path, family=FAM.name, instances=INSTS))


def test_from_store_takes_the_runs_of_the_given_instances(tmp_path):
    """A store that holds runs of two versions of each instance (other content hashes, as
    when a resume ran on a machine whose generator differed in the last bits): without
    ``instances`` the report refuses and says why, with them it takes their runs only."""
    path = tmp_path / "runs.jsonl"
    first = surco.compare(FAM, INSTS, METHODS, budget=BUDGET, store=path, progress=False)
    other = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        key = json.loads(rec["key"])
        key[4] = "0123456789abcdef"
        rec["key"], rec["run"]["value"] = json.dumps(key), rec["run"]["value"] + 1.0
        other.append(json.dumps(rec))
    with open(path, "a") as fh:
        fh.write("\n".join(other) + "\n")
    assert len(RunStore(path)) == 2 * len(METHODS) * len(INSTS)
    with pytest.raises(ValueError, match=r"two runs of 'mean-cost' on instance 0 with the "
                                         r"same budget, of two versions of the instance "
                                         r"\(content hashes [0-9a-f]{16} and [0-9a-f]{16}"):
        surco.Comparison.from_store(path, family=FAM.name)
    back = surco.Comparison.from_store(path, family=FAM.name, instances=INSTS)
    _same(first, back)
    assert back.table() == first.table()
    with pytest.raises(ValueError, match="holds no runs of family .* on these 3 instances"):
        surco.Comparison.from_store(path, family=FAM.name,
                                    instances=FAM.generate(3, seed=12, n=6, m=3))


def test_a_rerun_takes_every_run_from_the_store(tmp_path, monkeypatch):
    path = tmp_path / "runs.jsonl"
    first = surco.compare(FAM, INSTS, METHODS, budget=BUDGET, store=path, progress=False)
    assert len(RunStore(path)) == len(METHODS) * len(INSTS)
    monkeypatch.setattr(surco.runs, "run_one", lambda *a: pytest.fail("ran again"))
    again = surco.compare(FAM, INSTS, METHODS, budget=BUDGET, store=path, progress=False)
    _same(first, again)
    back = surco.Comparison.from_store(path, family=FAM.name)
    _same(first, back)
    assert back.table() == first.table()


def test_each_row_says_which_commits_its_runs_ran_at(tmp_path, monkeypatch):
    """A run records the commit it ran at; the store keeps it, a record written before runs
    carried it gives the record's own, and a summary row lists its runs' commits."""
    import surco.report
    path = tmp_path / "runs.jsonl"
    monkeypatch.setattr(surco.report, "commit", lambda: "a" * 40)
    first = surco.compare(FAM, INSTS, METHODS, budget=BUDGET, store=path, progress=False)
    assert {r.commit for r in first.runs} == {"a" * 40}
    assert all(row["commits"] == ["a" * 40] for row in first.summary())
    lines = path.read_text().splitlines()
    rec = json.loads(lines[0])
    assert rec["commit"] == rec["run"]["commit"] == "a" * 40
    del rec["run"]["commit"]                       # as written before runs carried it
    rec["commit"] = "b" * 40
    path.write_text("\n".join([json.dumps(rec), *lines[1:]]) + "\n")
    monkeypatch.setattr(surco.report, "commit", lambda: "c" * 40)
    again = surco.compare(FAM, INSTS, METHODS + ["local-search-steepest"], budget=BUDGET, store=path,
                          progress=False)
    rows = {row["method"]: row for row in again.summary()}
    assert rows[METHODS[0]]["commits"] == ["a" * 40, "b" * 40]     # a mixed row says so
    assert rows[METHODS[1]]["commits"] == ["a" * 40]
    assert rows["local-search-steepest"]["commits"] == ["c" * 40]                  # computed now
    back = surco.Comparison.from_store(path, family=FAM.name)
    assert {r.commit for r in back.runs} == {"a" * 40, "b" * 40, "c" * 40}
    monkeypatch.setattr(surco.report, "commit", lambda: None)      # outside a git tree
    assert surco.compare(FAM, INSTS[:1], ["mean-cost"], budget=BUDGET,
                         progress=False).summary()[0]["commits"] == []


def test_dropping_a_method_recomputes_only_its_runs(tmp_path, monkeypatch):
    path = tmp_path / "runs.jsonl"
    first = surco.compare(FAM, INSTS, METHODS, budget=BUDGET, store=path, progress=False)
    store = RunStore(path)
    with pytest.raises(ValueError, match="refusing to drop every record"):
        store.drop()
    assert store.drop("annealing", family="another family") == 0
    assert store.drop("annealing") == len(INSTS)
    assert len(RunStore(path)) == (len(METHODS) - 1) * len(INSTS)      # on disk too
    assert store.drop("annealing") == 0
    ran = []
    real = surco.runs.run_one
    monkeypatch.setattr(surco.runs, "run_one", lambda *a: ran.append(a) or real(*a))
    again = surco.compare(FAM, INSTS, METHODS, budget=BUDGET, store=path, progress=False)
    assert len(ran) == len(INSTS)                         # only the dropped runs again
    _same(first, again)
    assert len(RunStore(path)) == len(METHODS) * len(INSTS)


_KILLED = textwrap.dedent("""
    import sys, time
    import surco
    from surco.problems import assignment as A
    from surco.budget import Budget
    fam = A.FAMILY
    insts = fam.generate(3, seed=11, n=6, m=3)
    base = fam.baselines
    def slow(name):
        def method(y, meter):
            time.sleep(0.3)
            return base[name](y, meter)
        return method
    methods = {m: slow(m) for m in %r}
    surco.compare(fam, insts, methods, budget=Budget(evaluations=25), store=sys.argv[1],
                  progress=False)
""" % (METHODS,))


def test_a_killed_comparison_resumes_without_recomputing_a_finished_run(tmp_path):
    path = tmp_path / "runs.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED, str(path)])
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            if path.exists() and path.read_bytes().count(b"\n") >= 4:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    finished = {rec["key"] for rec in RunStore(path).records()}
    assert 4 <= len(finished) < len(METHODS) * len(INSTS), "killed after some runs, before all"
    computed: list[tuple[str, int]] = []
    real = surco.runs.run_one

    def counting(family, name, method, i, inst, budget):
        computed.append((name, i))
        return real(family, name, method, i, inst, budget)

    surco.runs.run_one = counting
    try:
        resumed = surco.compare(FAM, INSTS, METHODS, budget=BUDGET, store=path, progress=False)
    finally:
        surco.runs.run_one = real
    keys = {(r["run"]["method"], r["run"]["instance"]) for r in RunStore(path).records()
            if r["key"] in finished}
    assert not keys & set(computed), "a finished run was computed again"
    assert len(computed) == len(set(computed)) == len(METHODS) * len(INSTS) - len(finished)
    assert all(r.ok for r in resumed.runs), [r.error for r in resumed.runs]
    _same(resumed, surco.compare(FAM, INSTS, METHODS, budget=BUDGET, progress=False))


def test_an_executor_gives_the_serial_results(tmp_path):
    """The executor path (submitted runs, finished out of order, stored by this process) on
    a one-thread pool; its slow siblings run Dask and Ray worker processes."""
    from concurrent.futures import ThreadPoolExecutor
    serial = surco.compare(FAM, INSTS, METHODS, budget=BUDGET, progress=False)
    with ThreadPoolExecutor(1) as ex:
        pooled = surco.compare(FAM, INSTS, METHODS, budget=BUDGET, progress=False,
                               executor=ex, store=tmp_path / "r.jsonl")
    _same(serial, pooled)
    _same(serial, surco.Comparison.from_store(tmp_path / "r.jsonl", family=FAM.name))


@pytest.mark.slow
def test_a_dask_local_cluster_gives_the_serial_results(tmp_path):
    """Runs sent to Dask worker processes (the family travels by cloudpickle) come back to
    this process, which stores them; values equal the serial runs'. (A thread pool would
    share the family's cached solvers between runs: use processes.)"""
    import distributed    # the dev extra installs Dask
    serial = surco.compare(FAM, INSTS, METHODS, budget=BUDGET, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        fanned = surco.compare(FAM, INSTS, METHODS, budget=BUDGET, progress=False,
                               executor=client.get_executor(), store=tmp_path / "r.jsonl")
    _same(serial, fanned)
    assert all(r.host for r in fanned.runs)
    _same(serial, surco.Comparison.from_store(tmp_path / "r.jsonl", family=FAM.name))


def test_from_store_needs_the_budget_when_several_were_stored(tmp_path):
    path = tmp_path / "runs.jsonl"
    for e in (10, 25):
        surco.compare(FAM, INSTS[:1], ["annealing"], budget=Budget(evaluations=e), store=path,
                      progress=False)
    with pytest.raises(ValueError, match=r"two runs of 'annealing' on instance 0"):
        surco.Comparison.from_store(path, family=FAM.name)
    cmp = surco.Comparison.from_store(path, family=FAM.name, budget=Budget(evaluations=10))
    assert cmp.runs[0].evaluations <= 10
    with pytest.raises(ValueError, match="holds no runs of family 'nope'"):
        surco.Comparison.from_store(path, family="nope")


@pytest.mark.ray
def test_a_local_ray_gives_the_serial_results():
    import ray
    from surco.solvers import RayExecutor
    serial = surco.compare(FAM, INSTS, METHODS, budget=BUDGET, progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        fanned = surco.compare(FAM, INSTS, METHODS, budget=BUDGET, progress=False,
                               executor=RayExecutor())
    finally:
        ray.shutdown()
    _same(serial, fanned)
