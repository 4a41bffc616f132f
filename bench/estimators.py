"""Gradient estimators against PyEPO: forward+backward time for a batch of 32 shortest paths.

    python -m bench.estimators [--quick]

The problem is PyEPO's standard benchmark: shortest path on a 5×5 grid (40 arcs, from the
north-west to the south-east corner), costs from PyEPO's generator recipe (Tang & Khalil,
"PyEPO", Math. Prog. Comp. 2024: ``c = [((Bx)/√p + 3)^deg / 3.5^deg + 1]·ε``). Both sides
use the same solver family, OR-Tools' GLOP on the flow LP: surco through
``make_solver(spec, backend="glop")`` (OR-Tools MathOpt), PyEPO through its OR-Tools
``shortestPathModel(grid, solver="glop")`` (pywraplp). Both are jitted JAX functions
``C -> (loss, dL/dC)`` with ``L = Σ x ⊙ G`` for a fixed upstream gradient G (SPO+: the summed
loss). PyEPO 2.2 runs in its own environment (.bench-venv-pyepo, created here on first use:
``torch==2.13.0`` CPU build first, then ``pyepo==2.2.*`` and the jax / ortools versions of
this project) in a subprocess that times its side on request, so the two sides alternate
repetition by repetition and share the machine's load. The deterministic estimators'
gradients (blackbox, negative identity, SPO+) are compared entry by entry.

Both sides solve serially (PyEPO ``processes=1``, surco ``executor=None``): the targets. Extra
rows "(2 threads)" fan surco's ``solve_batch`` over a 2-thread pool, and rows "(jax oracle)"
run the same estimators over `surco.solvers.jax_oracles.ShortestPath` (exact shortest paths
inside XLA, no host callback); both are compared with PyEPO's serial time, its fastest setting for this batch (its ``processes=2`` pathos pool
took 130 ms against 37 ms serial for blackbox in a trial run on this machine).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".bench-venv-pyepo"
GRID = (5, 5)
BATCH = 32
LAM, SIGMA, N_SAMPLES = 10.0, 1.0, 10
COMMON = ("blackbox", "perturbed", "neg_identity", "spo+")
PARALLEL = ("blackbox", "perturbed", "neg_identity")
THREADS = " (2 threads)"
JAX = " (jax oracle)"
OURS_ONLY = ("identity", "straight_through", "quadratic")


# --------------------------------------------------------------------------------------
# the instance (numpy only: used by both sides)
# --------------------------------------------------------------------------------------
def grid_arcs(h: int, w: int) -> np.ndarray:
    """PyEPO's arc order on an h×w grid: per row, the east arcs, then the south arcs."""
    arcs = []
    for i in range(h):
        arcs += [(i * w + j, i * w + j + 1) for j in range(w - 1)]
        if i < h - 1:
            arcs += [(i * w + j, i * w + j + w) for j in range(w)]
    return np.array(arcs, dtype=np.int64)


def make_instance(seed: int = 0, num_feat: int = 5, deg: int = 4, noise: float = 0.5):
    """Costs of 32 instances (predicted and true), an upstream gradient, PyEPO's recipe."""
    rng = np.random.default_rng(seed)
    d = len(grid_arcs(*GRID))
    B = rng.binomial(1, 0.5, size=(d, num_feat))

    def costs(n):
        x = rng.normal(size=(n, num_feat))
        base = ((x @ B.T) / np.sqrt(num_feat) + 3.0) ** deg / 3.5 ** deg + 1.0
        return base * rng.uniform(1 - noise, 1 + noise, size=(n, d))

    return {"C": costs(BATCH).astype(np.float32), "C_true": costs(BATCH).astype(np.float32),
            "G": rng.normal(size=(BATCH, d)).astype(np.float32)}


# --------------------------------------------------------------------------------------
# the PyEPO side (runs inside .bench-venv-pyepo; imports nothing from surco)
# --------------------------------------------------------------------------------------
def _pyepo_worker(npz: str) -> None:
    import jax
    import jax.numpy as jnp
    import pyepo
    from pyepo.func.jax import SPOPlus, blackboxOpt, negativeIdentity, perturbedOpt
    from pyepo.model.ort import shortestPathModel

    data = np.load(npz)
    C, C_true, G = (jnp.asarray(data[k]) for k in ("C", "C_true", "G"))
    model = shortestPathModel(GRID, solver="glop")
    assert np.array_equal(np.array(model.arcs), grid_arcs(*GRID)), "arc order differs"
    # true solutions and objectives for SPO+, by the same model
    sols, objs = [], []
    for c in np.asarray(C_true):
        model.setObj(c)
        s, o = model.solve()
        sols.append(s)
        objs.append(o)
    X_true, Z_true = jnp.asarray(np.array(sols)), jnp.asarray(np.array(objs)[:, None], jnp.float32)
    key = jax.random.PRNGKey(0)
    bb, nid = blackboxOpt(model, lambd=LAM), negativeIdentity(model)
    po = perturbedOpt(model, n_samples=N_SAMPLES, sigma=SIGMA, variance_reduction=False)
    spo = SPOPlus(model, reduction="sum")
    fns = {
        "blackbox": lambda C: jnp.sum(bb(C) * G),
        "neg_identity": lambda C: jnp.sum(nid(C) * G),
        "perturbed": lambda C: jnp.sum(po(C, key=key) * G),
        "spo+": lambda C: spo(C, C_true, X_true, Z_true),
    }
    jitted = {k: jax.jit(jax.value_and_grad(f)) for k, f in fns.items()}

    def solve_only():
        for c in np.asarray(C):
            model.setObj(c)
            model.solve()

    def reply(obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    reply({"ready": True, "pyepo": pyepo.__version__, "jax": jax.__version__,
           "solver": "OR-Tools pywraplp GLOP (pyepo.model.ort.shortestPathModel)"})
    for line in sys.stdin:
        cmd, name = line.split()
        if cmd == "quit":
            break
        if name == "solve_only":
            t = time.perf_counter()
            solve_only()
            reply({"seconds": time.perf_counter() - t})
            continue
        f = jitted[name]
        t = time.perf_counter()
        v, g = f(C)
        g.block_until_ready()
        dt = time.perf_counter() - t
        if cmd == "grad":
            reply({"value": float(v), "grad": np.asarray(g).tolist()})
        else:
            reply({"seconds": dt})


class PyEPO:
    """The PyEPO subprocess, asked to time one repetition at a time."""

    def __init__(self, python: Path, npz: str):
        self.proc = subprocess.Popen(
            [str(python), "-m", "bench.estimators", "--pyepo-worker", npz], cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)})
        self.info = self._read()

    def _read(self, timeout: float = 300.0):
        import select
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.proc.kill()
            raise RuntimeError(f"PyEPO worker gave no answer in {timeout:.0f} s; killed it")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"PyEPO worker exited (code {self.proc.poll()}); see its stderr above")
        return json.loads(line)

    def ask(self, cmd: str, name: str):
        self.proc.stdin.write(f"{cmd} {name}\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("quit x\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=60)


def ensure_pyepo_env() -> Path:
    """Create .bench-venv-pyepo with PyEPO 2.2 (CPU torch first) if it is not there yet."""
    py = VENV / "bin" / "python"
    probe = [str(py), "-c", "import pyepo, jax, ortools, torch; print(pyepo.__version__)"]
    if py.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return py
    import importlib.metadata as md
    pins = [f"jax=={md.version('jax')}", f"ortools=={md.version('ortools')}"]
    print(f"creating {VENV} (torch==2.13.0 CPU, pyepo==2.2.*, {', '.join(pins)}) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(py), "-m", "pip", "install", "-q"]
    subprocess.run(pip + ["torch==2.13.0+cpu"], check=True)
    subprocess.run(pip + ["pyepo==2.2.*"] + pins, check=True)
    listed = subprocess.run([str(py), "-m", "pip", "list"], capture_output=True, text=True).stdout
    if "nvidia" in listed.lower():
        raise RuntimeError(f"{VENV}: pip pulled nvidia-* packages (a CUDA torch build); "
                           "install the CPU build of torch==2.13.0 first")
    subprocess.run(probe, check=True)
    return py


# --------------------------------------------------------------------------------------
# the surco side
# --------------------------------------------------------------------------------------
def _ours(data):
    from concurrent.futures import ThreadPoolExecutor

    import jax
    import jax.numpy as jnp

    from surco.estimators import get_estimator, spo_plus_loss
    from surco.solvers import ShortestPathOracle, make_solver
    from surco.solvers.jax_oracles import ShortestPath

    arcs = grid_arcs(*GRID)
    oracle = ShortestPathOracle(GRID[0] * GRID[1], arcs, 0, GRID[0] * GRID[1] - 1)
    solver = make_solver(oracle.spec, backend="glop")
    C, C_true, G = (jnp.asarray(data[k]) for k in ("C", "C_true", "G"))
    X_true = jnp.asarray(np.stack([s.x for s in solver.solve_batch(np.asarray(C_true))]),
                         jnp.float32)
    key = jax.random.key(0)
    hyper = {"blackbox": dict(lam=LAM), "perturbed": dict(sigma=SIGMA, n=N_SAMPLES)}
    fns = {}
    for name in ("blackbox", "perturbed", "neg_identity") + OURS_ONLY:
        est = get_estimator(name, **hyper.get(name, {}))
        fns[name] = (lambda est: lambda C: jnp.sum(est(solver, C, key) * G))(est)
    fns["spo+"] = lambda C: jnp.sum(spo_plus_loss(solver, C, C_true, X_true))
    # the same, with solve_batch fanned out over 2 threads (MathOpt releases the GIL)
    pool = ThreadPoolExecutor(2)
    for name in PARALLEL:
        est = get_estimator(name, **hyper.get(name, {}))
        fns[name + THREADS] = (lambda est: lambda C: jnp.sum(
            est(solver, C, key, executor=pool) * G))(est)
    # the project's fastest path: the same estimators over the JAX-native oracle of the
    # same graph (exact, no host callback: one XLA program per batch)
    jax_oracle = ShortestPath.from_oracle(oracle)
    for name in COMMON:
        if name == "spo+":
            fns[name + JAX] = lambda C: jnp.sum(spo_plus_loss(jax_oracle, C, C_true, X_true))
            continue
        est = get_estimator(name, **hyper.get(name, {}))
        fns[name + JAX] = (lambda est: lambda C: jnp.sum(est(jax_oracle, C, key) * G))(est)
    jitted = {k: jax.jit(jax.value_and_grad(f)) for k, f in fns.items()}

    def run(name):
        if name == "solve_only":
            t = time.perf_counter()
            solver.solve_batch(np.asarray(C))
            return time.perf_counter() - t, None
        t = time.perf_counter()
        v, g = jitted[name](C)
        g.block_until_ready()
        return time.perf_counter() - t, (float(v), np.asarray(g))

    return run


def main(argv=None) -> None:
    from bench._report import Report, parse_args

    args = parse_args(__doc__.splitlines()[0], argv, extra=lambda p: (
        p.add_argument("--repeats", type=int, default=None,
                       help="timed repetitions per method (default 5 quick, 30 full)"),
        p.add_argument("--pyepo-worker", default=None, help=argparse_hidden())))
    repeats = args.repeats or (5 if args.quick else 30)
    report = Report("estimators", args.quick)
    data = make_instance()
    import tempfile

    from tqdm import tqdm
    tmp = tempfile.NamedTemporaryFile(suffix=".npz", delete=False)
    np.savez(tmp.name, **data)
    peer = PyEPO(ensure_pyepo_env(), tmp.name)
    try:
        ours = _ours(data)
        names = (COMMON + OURS_ONLY + tuple(n + THREADS for n in PARALLEL)
                 + tuple(n + JAX for n in COMMON) + ("solve_only",))
        # warm-up (compilation) on both sides, and the gradient comparison
        grads, grads_jax = {}, {}
        for name in names:
            _, out = ours(name)
            if name.endswith(JAX) and not name.startswith("perturbed"):
                grads_jax[name] = out
            if name in COMMON:
                theirs = peer.ask("grad", name)
                if name != "perturbed":
                    grads[name] = (out, theirs)
            elif name == "solve_only":
                peer.ask("time", name)
        times = {(side, n): [] for n in names for side in ("surco", "pyepo")}
        for _ in tqdm(range(repeats), desc="repetitions", file=sys.stderr):
            for name in names:
                times[("surco", name)].append(ours(name)[0])
                if name in COMMON or name == "solve_only":
                    times[("pyepo", name)].append(peer.ask("time", name)["seconds"])
    finally:
        peer.close()
        os.unlink(tmp.name)

    setting = f"{GRID[0]}x{GRID[1]} grid shortest path, B={BATCH}"
    solves = {"blackbox": 2 * BATCH, "perturbed": N_SAMPLES * BATCH, "neg_identity": BATCH,
              "spo+": BATCH, "identity": BATCH, "straight_through": BATCH,
              "quadratic": BATCH, "solve_only": BATCH}
    solves.update({n + THREADS: solves[n] for n in PARALLEL})
    solves.update({n + JAX: solves[n] for n in COMMON})
    for name in names:
        ms = 1e3 * float(np.median(times[("surco", name)]))
        row = dict(setting=setting, method=name, solves=solves[name], surco_ms=round(ms, 2))
        peer_name = name.replace(THREADS, "").replace(JAX, "")
        if times[("pyepo", peer_name)]:
            pe = 1e3 * float(np.median(times[("pyepo", peer_name)]))
            row.update(pyepo_ms=round(pe, 2), speedup=round(pe / ms, 3))
        if name.endswith(THREADS):
            row["note"] = "surco: 2 threads; PyEPO: processes=1 (its fastest here)"
        if name in grads:
            (v, g), theirs = grads[name]
            row["max_grad_diff"] = float(np.max(np.abs(g - np.asarray(theirs["grad"]))))
            row["loss_diff"] = abs(v - theirs["value"])
        if name.endswith(JAX):
            row["note"] = "surco: JAX shortest-path oracle inside XLA; PyEPO: GLOP"
            if name in grads_jax and peer_name in grads:
                row["max_grad_diff"] = float(np.max(np.abs(
                    grads_jax[name][1] - np.asarray(grads[peer_name][1]["grad"]))))
        if name == "quadratic":
            row["note"] = "backward QP: HiGHS (highspy)"
        report.row(**row)
    for name in COMMON:
        r = next(r for r in report.rows if r["method"] == name)
        report.target(f"speedup vs PyEPO, both on GLOP, {name} (forward+backward, B={BATCH})",
                      r["speedup"], ">=", 1.0)
        fastest = max((r for r in report.rows if r["method"].replace(THREADS, "").replace(
            JAX, "") == name), key=lambda r: r["speedup"])
        report.target(f"speedup vs PyEPO, fastest path ({fastest['method']}), {name}",
                      fastest["speedup"], ">=", 3.0)
    for name, ((_, g), theirs) in grads.items():
        report.target(f"max |grad surco - grad PyEPO|, {name}",
                      float(np.max(np.abs(g - np.asarray(theirs["grad"])))), "<=", 1e-5)
    report.extra["peer"] = {**peer.info, "frontend": "pyepo.func.jax (JAX, jitted)",
                            "processes": 1}
    report.extra["surco_solver"] = "OR-Tools MathOpt GLOP (make_solver(spec, backend='glop'))"
    report.extra["repeats"] = repeats
    report.finish(table_columns=["setting", "method", "solves", "surco_ms", "pyepo_ms",
                                 "speedup", "max_grad_diff", "note"])


def argparse_hidden():
    import argparse
    return argparse.SUPPRESS


if __name__ == "__main__":
    if "--pyepo-worker" in sys.argv:
        _pyepo_worker(sys.argv[sys.argv.index("--pyepo-worker") + 1])
    else:
        main()
