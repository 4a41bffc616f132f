"""Frequency-domain simulation of a ceviche-challenges device, with exact adjoint gradients,
exposed to JAX.

The device geometry, ports and mode sources come from the `ceviche-challenges` package
(Schubert et al., ACS Photonics 2022) and the FDFD operators from `ceviche` (Hughes et al.,
ACS Photonics 2019). What this module adds is speed on a small CPU and a JAX interface:

* Per wavelength the Ez system ``A(ε) e = b`` with ``A = C − ε₀ω² diag(ε)`` is factorised
  once (SuperLU) and the factorisation serves the forward solve and every adjoint solve,
  where ceviche's autograd path re-solves from scratch for each.
* The forward/backward port amplitudes that `ceviche_challenges.scattering` computes are
  linear in e; they are extracted once per port as sparse functionals (and checked against
  the package on a random field), so scattering parameters are a few dot products.
* `transmission` is a JAX function of the design density with a `jax.custom_vjp`: the
  forward callback returns the transmissions and, when differentiating, their full Jacobian
  with respect to the design (one adjoint solve per port and wavelength, all with the stored
  factorisation). It works under ``jit``, ``grad`` and ``vmap`` (sequential callbacks).

Transmission into port j at wavelength λ is ``T = |s_j|²`` with ``s_j = b_j / a_in``, the
outgoing amplitude at port j over the incoming amplitude at the excited port, exactly as
`ceviche_challenges.model_base.Model.simulate` defines its scattering parameters.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spl

_C_NM_PER_S = 299792458.0 * 1e9


#: What to install when the photonics extra is missing (README: install from the checkout).
EXTRA_HINT = ("the 'photonics' extra (ceviche-challenges): from the checkout, "
              "pip install -e \".[photonics]\" (make install does it)")


def _imports():
    try:
        import ceviche
        from ceviche import constants
        from ceviche_challenges import scattering
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(f"surco.problems.photonics simulation needs {EXTRA_HINT}") from exc
    return ceviche, constants, scattering


_THREADPOOL = None


def _single_thread():
    """Context manager limiting BLAS to one thread (SuperLU calls BLAS; oversubscribed
    OpenBLAS threads slow a factorisation down by an order of magnitude on a busy machine)."""
    global _THREADPOOL
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover
        import contextlib
        return contextlib.nullcontext()
    if _THREADPOOL is None:
        _THREADPOOL = ThreadpoolController()
    return _THREADPOOL.limit(limits=1, user_api="blas")


class _CachedPort:
    """A port whose (deterministic, eigen-solved) mode profile is computed once."""

    def __init__(self, port):
        self._port = port
        self._profiles: dict = {}

    def __getattr__(self, name):
        return getattr(self._port, name)

    def field_profiles(self, epsilon_r, omega, dl):
        key = (float(omega), float(dl), np.asarray(epsilon_r).tobytes())
        if key not in self._profiles:
            self._profiles[key] = self._port.field_profiles(epsilon_r, omega, dl)
        return self._profiles[key]


@dataclasses.dataclass
class _Frequency:
    omega: float
    C: sp.csr_matrix            # curl-curl part of A
    kappa: float                # A = C + kappa * diag(eps)
    b: np.ndarray               # right-hand side (1j ω J)
    u_in: np.ndarray            # dense functional: incoming amplitude at the excited port
    v_out: np.ndarray           # (P, N) dense functionals: outgoing amplitude at each port


@dataclasses.dataclass(frozen=True)
class SimResult:
    """One simulation. ``T``: (n_wavelengths, n_ports) transmissions |s|²; ``s``: complex
    scattering parameters; ``ez``: (n_wavelengths, Nx, Ny) complex field or None; ``jac``:
    (n_wavelengths, n_ports, H, W) dT/dρ over the design, or None."""

    T: np.ndarray
    s: np.ndarray
    ez: np.ndarray | None
    jac: np.ndarray | None


class Simulator:
    """FDFD simulation of one ceviche-challenges device model with an adjoint Jacobian.

    Args:
      model: a `ceviche_challenges.model_base.Model` (geometry, ports, permittivities).
      wavelengths_nm: the wavelengths to simulate.
      excite_port: index of the excited port (default 0, "port 1").
      permc_spec, diag_pivot_thresh: SuperLU options (minimum-degree ordering on A+Aᵀ with
        a relaxed pivot threshold is 2-3× faster than SuperLU's defaults on these grids, with
        relative residuals ~1e-12; a solve whose relative residual exceeds 1e-8 is redone
        with partial pivoting).

    Raises:
      ValueError: bad wavelengths or port index.
      RuntimeError: the port amplitude functional could not be reproduced (package change).
    """

    #: how many recent results `simulate` keeps (keyed by the exact density)
    RECENT = 4

    def __init__(self, model, wavelengths_nm: Sequence[float], excite_port: int = 0,
                 permc_spec: str = "MMD_AT_PLUS_A", diag_pivot_thresh: float = 0.01):
        ceviche, constants, scattering = _imports()
        wl = np.asarray(wavelengths_nm, dtype=np.float64).reshape(-1)
        if wl.size == 0 or not np.all(np.isfinite(wl)) or np.any(wl <= 0):
            raise ValueError(f"Simulator: wavelengths_nm must be positive and finite, got {wl}")
        ports = [_CachedPort(p) for p in model.ports]
        if not 0 <= int(excite_port) < len(ports):
            raise ValueError(f"Simulator: excite_port={excite_port} not in [0, {len(ports)})")
        self.model = model
        self._recent: collections.OrderedDict[bytes, SimResult] = collections.OrderedDict()
        self.wavelengths_nm = wl
        self.excite_port = int(excite_port)
        self.n_ports = len(ports)
        self.shape = tuple(int(s) for s in model.shape)
        x0, y0, x1, y1 = (int(v) for v in model.design_region_coords)
        self.design_slice = (slice(x0, x1), slice(y0, y1))
        self.design_shape = (x1 - x0, y1 - y0)
        if tuple(int(s) for s in model.design_variable_shape) != self.design_shape:
            raise ValueError("Simulator: models with a symmetry transform of the design "
                             "variable are not supported")
        self.eps_clad = float(model.cladding_permittivity)
        self.eps_slab = float(model.slab_permittivity)
        density_bg = np.asarray(model.density_bg, dtype=np.float64)
        self._density_bg = density_bg.copy()
        eps_bg = np.asarray(model.epsilon_r_bg(), dtype=np.float64)
        self._permc, self._thresh = permc_spec, float(diag_pivot_thresh)
        dl, npml = float(model.dl), int(model.pml_width)
        N = self.shape[0] * self.shape[1]
        self._freqs: list[_Frequency] = []
        for lam in wl:
            omega = 2 * np.pi * _C_NM_PER_S / lam
            sim = ceviche.fdfd_ez(omega, dl, eps_bg, [npml, npml])
            C = (-(sim.Dxf @ sim.Dxb) - (sim.Dyf @ sim.Dyb)) / constants.MU_0
            kappa = -constants.EPSILON_0 * omega ** 2
            src = ports[self.excite_port].source_fdfd(omega, dl, eps_bg)
            b = 1j * omega * np.asarray(src, dtype=np.complex128).reshape(-1)
            Dxb, Dyb = sim.Dxb.tocsr(), sim.Dyb.tocsr()
            hfac = 1.0 / (1j * omega * constants.MU_0)

            def amplitudes(ez_vec, port, _hfac=hfac, _Dxb=Dxb, _Dyb=Dyb, _omega=omega):
                hx = (-_hfac * (_Dyb @ ez_vec)).reshape(self.shape)
                hy = (_hfac * (_Dxb @ ez_vec)).reshape(self.shape)
                return scattering.calculate_amplitudes(_omega, dl, port, ez_vec.reshape(self.shape),
                                                       hy, hx, eps_bg)

            funcs = [self._linear_functional(amplitudes, p, N) for p in ports]
            u_in = funcs[self.excite_port][0]
            v_out = np.stack([f[1] for f in funcs])
            self._freqs.append(_Frequency(omega, C.tocsc(), kappa, b, u_in, v_out))
            # Check the extracted functionals against the package on a random field.
            rng = np.random.default_rng(0)
            e = rng.normal(size=N) + 1j * rng.normal(size=N)
            for p, (fu, fv) in zip(ports, funcs):
                ap, am = amplitudes(e, p)
                scale = np.abs(fu).sum() * np.abs(e).max() + 1e-300
                if abs(ap - fu @ e) > 1e-9 * scale or abs(am - fv @ e) > 1e-9 * scale:
                    raise RuntimeError("Simulator: port amplitude is not reproduced by its "
                                       "linear functional (ceviche_challenges changed?)")

    def _linear_functional(self, amplitudes, port, N):
        """Dense vectors (f+, f-) with amplitudes(e) = (f+·e, f-·e), by unit probes on the
        pixels the port reads (its slice shifted by the monitor offset, ±2 pixels)."""
        xs, ys = (np.asarray(c) for c in port.coords())
        off = int(port.signed_offset())
        Nx, Ny = self.shape
        if port.dir.is_along_x:
            rows = np.arange(xs.min() + off - 2, xs.max() + off + 3)
            cols = np.arange(ys.min() - 1, ys.max() + 2)
        else:
            rows = np.arange(xs.min() - 1, xs.max() + 2)
            cols = np.arange(ys.min() + off - 2, ys.max() + off + 3)
        rows = rows[(rows >= 0) & (rows < Nx)]
        cols = cols[(cols >= 0) & (cols < Ny)]
        fp, fm = np.zeros(N, np.complex128), np.zeros(N, np.complex128)
        e = np.zeros(N, np.complex128)
        for i in rows:
            for j in cols:
                k = i * Ny + j
                e[k] = 1.0
                ap, am = amplitudes(e, port)
                e[k] = 0.0
                fp[k], fm[k] = ap, am
        return fp, fm

    # ------------------------------------------------------------------------------------
    def check_density(self, rho) -> np.ndarray:
        """Validate a design density: shape ``design_shape``, finite, within [0, 1]."""
        r = np.asarray(rho, dtype=np.float64)
        if r.shape != self.design_shape:
            raise ValueError(f"Simulator: design has shape {r.shape}, expected {self.design_shape}")
        if not np.all(np.isfinite(r)):
            raise ValueError("Simulator: design contains NaN or inf")
        if r.min() < -1e-6 or r.max() > 1 + 1e-6:
            raise ValueError(f"Simulator: design density must lie in [0, 1], got range "
                             f"[{r.min():.4g}, {r.max():.4g}]")
        return r

    def epsilon(self, rho) -> np.ndarray:
        """Relative permittivity of the whole domain for design density ``rho``."""
        d = self._density_bg.copy()
        d[self.design_slice] = self.check_density(rho)
        return self.eps_clad + (self.eps_slab - self.eps_clad) * d

    def simulate(self, rho, *, jacobian: bool = False, fields: bool = False) -> SimResult:
        """Simulate design density ``rho`` (``design_shape``, values in [0, 1]).

        Args:
          rho: design density (1 = slab material, 0 = cladding).
          jacobian: also return dT/dρ (one extra triangular solve per port and wavelength).
          fields: also return the Ez fields.

        Returns:
          A `SimResult`.

        Raises:
          ValueError: bad design (shape, NaN, outside [0, 1]).

        The last `RECENT` results (without fields) are kept: simulating a design again (an
        optimiser's step followed by the evaluation of the same design) costs nothing, and
        a result with the Jacobian also serves a request without it.
        """
        r = self.check_density(rho)
        key = r.tobytes()
        if not fields:
            hit = self._recent.get(key)
            if hit is not None and (hit.jac is not None or not jacobian):
                self._recent.move_to_end(key)
                return hit
        res = self._simulate(r, jacobian, fields)
        if not fields:
            for a in (res.T, res.s, res.jac):
                if a is not None:
                    a.setflags(write=False)    # shared with later callers: read-only
            self._recent[key] = res
            while len(self._recent) > self.RECENT:
                self._recent.popitem(last=False)
        return res

    def _simulate(self, rho: np.ndarray, jacobian: bool, fields: bool) -> SimResult:
        eps = self.epsilon(rho).reshape(-1)
        nw, P = len(self._freqs), self.n_ports
        H, W = self.design_shape
        T = np.zeros((nw, P))
        S = np.zeros((nw, P), np.complex128)
        jac = np.zeros((nw, P, H, W)) if jacobian else None
        ez_all = np.zeros((nw,) + self.shape, np.complex128) if fields else None
        deps = self.eps_slab - self.eps_clad
        with _single_thread():
            for w, fr in enumerate(self._freqs):
                A = (fr.C + sp.diags(fr.kappa * eps, format="csc")).tocsc()
                lu = spl.splu(A, permc_spec=self._permc, diag_pivot_thresh=self._thresh)
                e = lu.solve(fr.b)
                if np.linalg.norm(A @ e - fr.b) > 1e-8 * np.linalg.norm(fr.b):
                    # the relaxed pivoting lost accuracy: refactorise with partial pivoting
                    lu = spl.splu(A, permc_spec="COLAMD", diag_pivot_thresh=1.0)
                    e = lu.solve(fr.b)
                a = fr.u_in @ e
                s = (fr.v_out @ e) / a
                S[w], T[w] = s, np.abs(s) ** 2
                if fields:
                    ez_all[w] = e.reshape(self.shape)
                if jacobian:
                    # dT_j = Re(r_j · de), r_j = 2 conj(s_j) (v_j − s_j u) / a;
                    # de = −A⁻¹ κ diag(e) dε  ⇒  dT_j/dε = Re(−κ e ⊙ A⁻ᵀ r_j).
                    R = (2 * np.conj(s)[:, None] * (fr.v_out - s[:, None] * fr.u_in[None, :]) / a)
                    lam = lu.solve(np.ascontiguousarray(R.T), trans="T")  # (N, P)
                    g = np.real(-fr.kappa * e[:, None] * lam).T.reshape((P,) + self.shape)
                    jac[w] = deps * g[(slice(None),) + self.design_slice]
        return SimResult(T=T, s=S, ez=ez_all, jac=jac)


def transmission_fn(sim: Simulator):
    """The JAX function ``rho (H, W) -> T (n_wavelengths, n_ports)`` of a `Simulator`.

    Differentiable by a custom VJP whose residual is the Jacobian computed in the forward
    callback; works under jit / grad / vmap (vmap runs callbacks one by one). The output has
    the dtype of rho. NaN or out-of-range densities raise ValueError inside the callback.
    """
    nw, P = len(sim.wavelengths_nm), sim.n_ports
    H, W = sim.design_shape

    def _host(rho, jacobian):
        res = sim.simulate(np.asarray(rho, np.float64), jacobian=jacobian)
        dt = np.asarray(rho).dtype
        if jacobian:
            return res.T.astype(dt), res.jac.astype(dt)
        return res.T.astype(dt)

    def _primal(rho):
        return jax.pure_callback(functools.partial(_host, jacobian=False),
                                 jax.ShapeDtypeStruct((nw, P), rho.dtype), rho,
                                 vmap_method="sequential")

    @jax.custom_vjp
    def T(rho):
        return _primal(rho)

    def fwd(rho):
        out = (jax.ShapeDtypeStruct((nw, P), rho.dtype),
               jax.ShapeDtypeStruct((nw, P, H, W), rho.dtype))
        t, jac = jax.pure_callback(functools.partial(_host, jacobian=True), out, rho,
                                   vmap_method="sequential")
        return t, jac

    def bwd(jac, g):
        return (jnp.einsum("wp,wphk->hk", g, jac),)

    T.defvjp(fwd, bwd)

    def transmission(rho: jax.Array) -> jax.Array:
        rho = jnp.asarray(rho)
        if rho.shape != (H, W):
            raise ValueError(f"transmission: design has shape {rho.shape}, expected {(H, W)}")
        if not jnp.issubdtype(rho.dtype, jnp.floating):
            rho = rho.astype(jnp.float32)
        return T(rho)

    return transmission
