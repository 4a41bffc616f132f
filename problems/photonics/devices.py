"""Photonic devices of the ceviche challenges and their randomised instances.

The four devices of Schubert et al. (ACS Photonics 2022) and SurCo §5.2, built with the
`ceviche-challenges` package at SurCo's light settings: wavelengths 1270 and 1290 nm, a
40 nm grid (the coarsest of 50 and 40 nm on which every length of these geometries
resolves: 560 and 720 nm do not resolve at 50 nm), silicon (ε = 12.25) in oxide
(ε = 2.25), 20 PML cells, 720 nm access waveguides, 560 nm mode padding.

=================  =============  =============================================================
device             design (px)    randomised per instance (all in nm, uniform over the grid)
=================  =============  =============================================================
waveguide_bend     40 × 40        width ∈ {320, 400, 480}; each waveguide shifted along its
                   (1.6 µm)       side of the design region by an offset ∈ {−200, −160, …, 200}
mode_converter     40 × 40        left width ∈ {320, 400, 480}, right width ∈ {400, 480};
                   (1.6 µm)       vertical offsets of the two waveguides ∈ {−200, …, 200};
                                  fundamental mode in, second-order mode out
beam_splitter      80 × 50        width ∈ {320, 400}; gap between the two waveguide pairs
                   (3.2×2.0 µm)   ∈ {960, 1040, 1120, 1200}; mode padding 480 nm (the package's
                                  splitter asserts gap >= 2 × padding)
wdm                80 × 80        width ∈ {320, 400, 480}; input offset ∈ {−200, …, 200};
                   (3.2 µm)       outputs at ±d from the centre, d ∈ {920, 1000, 1080}
=================  =============  =============================================================

Specs (transmission windows, from Schubert et al. 2022, identical at both wavelengths unless
stated): bend and mode converter — reflection |S11|² ≤ −20 dB, transmission |S21|² ≥ −0.5 dB;
beam splitter — |S11|², |S41|² ≤ −20 dB and |S21|², |S31|² within [−3.5 dB, 1 − 10^−0.35];
wdm — |S11|² ≤ −20 dB, at 1270 nm |S21|² ≥ −3 dB and |S31|² ≤ −20 dB, at 1290 nm the reverse.

Instances are `DeviceInstance` values: frozen, hashable, and registered as JAX pytrees with
no array leaves (the geometry is static data), so they can be closed over or passed through
``jit``. `make_instance` draws one from a seed of a split ("train" or "test", whose seeds
never overlap) and `generate` (``FAMILY.generate``) several from consecutive seeds; the
benches use ``generate(N_PER_SPLIT, split=...)``: 25 train and 25 test instances per device.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import numpy as np

from surco.checks import check_int

from .simulate import EXTRA_HINT, Simulator

DEVICES: tuple[str, ...] = ("waveguide_bend", "mode_converter", "beam_splitter", "wdm")
WAVELENGTHS_NM: tuple[float, float] = (1270.0, 1290.0)
GRID_CANDIDATES_NM: tuple[int, ...] = (50, 40)

_CLAD, _SLAB = 2.25, 12.25
_WG_LENGTH, _MODE_PAD, _PADDING = 720, 560, 400
_MODE_PAD_SPLITTER = 480
_PORT_PML_OFFSET, _MONITOR_OFFSET, _PML = 40, 40, 20
_OFFSETS = tuple(range(-200, 201, 40))

#: per device: parameter name -> allowed values (nm)
PARAM_RANGES: dict[str, dict[str, tuple[int, ...]]] = {
    "waveguide_bend": {"wg_width": (320, 400, 480), "offset_in": _OFFSETS,
                       "offset_out": _OFFSETS},
    "mode_converter": {"left_width": (320, 400, 480), "right_width": (400, 480),
                       "offset_left": _OFFSETS, "offset_right": _OFFSETS},
    "beam_splitter": {"wg_width": (320, 400), "wg_separation": (960, 1040, 1120, 1200)},
    "wdm": {"wg_width": (320, 400, 480), "offset_in": _OFFSETS,
            "output_half_separation": (920, 1000, 1080)},
}
DESIGN_NM: dict[str, tuple[int, int]] = {
    "waveguide_bend": (1600, 1600), "mode_converter": (1600, 1600),
    "beam_splitter": (3200, 2000), "wdm": (3200, 3200),
}
#: the nominal (invrs-gym "lightweight") geometry of each device
NOMINAL: dict[str, dict[str, int]] = {
    "waveguide_bend": {"wg_width": 400, "offset_in": 0, "offset_out": 0},
    "mode_converter": {"left_width": 400, "right_width": 400, "offset_left": 0,
                       "offset_right": 0},
    "beam_splitter": {"wg_width": 400, "wg_separation": 1120},
    "wdm": {"wg_width": 400, "offset_in": 0, "output_half_separation": 1080},
}
#: the absolute seed of each split's seed 0 (`make_instance`); a split holds `SPLIT_SEEDS`
#: seeds, so train and test instances never share one
SEED_BASE = {"train": 0, "test": 100_000}
SPLIT_SEEDS = 100_000
#: instances per split in the benches (``generate(N_PER_SPLIT, split=...)``)
N_PER_SPLIT = 25


def _db(x: float) -> float:
    return float(10 ** (x / 10))


def spec_window(device: str) -> tuple[np.ndarray, np.ndarray]:
    """Target transmission window ``(lower, upper)``, each ``(n_wavelengths, n_ports)``.

    Raises:
      ValueError: unknown device.
    """
    _check_device(device)
    lo20 = _db(-20.0)
    if device in ("waveguide_bend", "mode_converter"):
        lb, ub = [0.0, _db(-0.5)], [lo20, 1.0]
        return np.array([lb, lb]), np.array([ub, ub])
    if device == "beam_splitter":
        lb = [0.0, _db(-3.5), _db(-3.5), 0.0]
        ub = [lo20, 1 - _db(-3.5), 1 - _db(-3.5), lo20]
        return np.array([lb, lb]), np.array([ub, ub])
    lb = np.array([[0.0, _db(-3.0), 0.0], [0.0, 0.0, _db(-3.0)]])
    ub = np.array([[lo20, 1.0, lo20], [lo20, lo20, 1.0]])
    return lb, ub


def _check_device(device: str) -> None:
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose from {DEVICES}")


@dataclasses.dataclass(frozen=True)
class DeviceInstance:
    """One randomised device. ``params`` are ``(name, value_nm)`` pairs (see PARAM_RANGES).

    Hashable and a JAX pytree without leaves (all fields are static)."""

    device: str
    params: tuple[tuple[str, int], ...]
    seed: int = -1

    def __post_init__(self):
        _check_device(self.device)
        given = dict(self.params)
        ranges = PARAM_RANGES[self.device]
        if set(given) != set(ranges):
            raise ValueError(f"DeviceInstance({self.device}): params must be exactly "
                             f"{sorted(ranges)}, got {sorted(given)}")
        for k, v in given.items():
            if int(v) not in ranges[k]:
                raise ValueError(f"DeviceInstance({self.device}): {k}={v} nm is outside the "
                                 f"documented values {ranges[k]}")
        object.__setattr__(self, "params", tuple(sorted((k, int(v)) for k, v in given.items())))

    def __getitem__(self, name: str) -> int:
        return dict(self.params)[name]

    @property
    def design_shape(self) -> tuple[int, int]:
        """Shape (H, W) of the design in pixels."""
        g = grid_nm(self.device)
        return tuple(s // g for s in DESIGN_NM[self.device])  # type: ignore[return-value]

    def features(self) -> np.ndarray:
        """Instance features for SurCo-prior: the parameters in µm, in name order."""
        return np.array([v / 1000.0 for _, v in self.params], dtype=np.float32)


jax.tree_util.register_pytree_node(
    DeviceInstance, lambda y: ((), y), lambda aux, _: aux)


def grid_nm(device: str) -> int:
    """The coarsest grid among `GRID_CANDIDATES_NM` on which every length of the device
    (all parameter values, design size, fixed lengths) is a whole number of cells."""
    _check_device(device)
    lengths = [_WG_LENGTH, 2 * _MODE_PAD, 2 * _MODE_PAD_SPLITTER, _PADDING, _PORT_PML_OFFSET,
               _MONITOR_OFFSET]
    lengths += list(DESIGN_NM[device]) + [d / 2 for d in DESIGN_NM[device]]
    for name, vals in PARAM_RANGES[device].items():
        # widths and the splitter gap enter as halves (centre ± v/2), offsets as they are
        half = "width" in name or name == "wg_separation"
        lengths += [v / 2 if half else v for v in vals]
    for g in GRID_CANDIDATES_NM:
        if all(float(L) % g == 0 for L in lengths):
            return g
    raise ValueError(f"{device}: no grid in {GRID_CANDIDATES_NM} nm resolves its geometry")


def make_instance(seed: int, *, device: str = "waveguide_bend",
                  split: str = "test") -> DeviceInstance:
    """The instance of ``device`` at seed ``seed`` of ``split``, uniform over `PARAM_RANGES`
    (its ``seed`` attribute is the absolute seed ``SEED_BASE[split] + seed``).

    Raises:
      ValueError: naming the argument: a seed outside [0, `SPLIT_SEEDS`), an unknown device
        or split.
    """
    who = "photonics.make_instance"
    seed = check_int("seed", seed, 0, who=who)
    if seed >= SPLIT_SEEDS:
        raise ValueError(f"{who}: seed must be < {SPLIT_SEEDS} (the seeds of one split), "
                         f"got {seed}")
    if device not in DEVICES:
        raise ValueError(f"{who}: device must be one of {DEVICES}, got {device!r}")
    if split not in SEED_BASE:
        raise ValueError(f"{who}: split must be 'train' or 'test', got {split!r}")
    absolute = SEED_BASE[split] + seed
    rng = np.random.default_rng([absolute, DEVICES.index(device)])
    params = tuple((k, int(rng.choice(v))) for k, v in sorted(PARAM_RANGES[device].items()))
    return DeviceInstance(device, params, absolute)


def generate(count: int, seed: int = 0, *, device: str = "waveguide_bend",
             split: str = "test") -> list[DeviceInstance]:
    """``FAMILY.generate``: ``count`` instances of ``device`` from ``split``, at its seeds
    ``seed, seed + 1, …`` (`make_instance`); deterministic, and ``generate(j, seed)`` is the
    first j of ``generate(count, seed)``. Train seeds for any tuning, test seeds for benches.

    Raises:
      ValueError: naming the argument: count < 1, a seed outside [0, `SPLIT_SEEDS`), an
        unknown device or split.
    """
    count = check_int("count", count, 1, who="photonics.generate")
    seed = check_int("seed", seed, 0, who="photonics.generate")
    return [make_instance(seed + i, device=device, split=split) for i in range(count)]


def nominal_instance(device: str) -> DeviceInstance:
    """The nominal geometry (the invrs-gym lightweight challenge)."""
    _check_device(device)
    return DeviceInstance(device, tuple(NOMINAL[device].items()))


# --------------------------------------------------------------------------------------
# ceviche-challenges models
# --------------------------------------------------------------------------------------
def _cc():
    try:
        import ceviche_challenges as cc
        from ceviche_challenges import beam_splitter, defs, mode_converter, modes
        from ceviche_challenges import units as u
        from ceviche_challenges import waveguide_bend, wdm
    except ImportError as exc:  # pragma: no cover
        raise ImportError(f"photonic devices need {EXTRA_HINT}") from exc
    return cc, u, defs, modes, waveguide_bend, mode_converter, beam_splitter, wdm


@functools.lru_cache(maxsize=None)
def _model_classes():
    cc, u, defs, modes, waveguide_bend, mode_converter, _, _ = _cc()

    class OffsetBendModel(waveguide_bend.model.WaveguideBendModel):
        """The package's waveguide bend with each waveguide shifted along its side of the
        design region (offset_in: the X_POS input's centre along j; offset_out: the Y_POS
        output's centre along i)."""

        def __init__(self, params, spec, offset_in_nm: int, offset_out_nm: int):
            self._off_in = offset_in_nm * u.nm
            self._off_out = offset_out_nm * u.nm
            super().__init__(params, spec)

        def _make_bg_density_and_ports(self, init_design_region: bool = False):
            p, s = self.params, self.spec
            res = p.resolution
            density = np.zeros(self.shape)
            monitor = u.resolve(s.input_monitor_offset, res)
            extent = s.pml_width + u.resolve(s.wg_length, res)
            cx = s.wg_length + s.variable_region_size[0] / 2 + self._off_out
            cy = s.wg_length + s.variable_region_size[1] / 2 + self._off_in
            x0 = s.pml_width + u.resolve(cx - s.wg_width / 2, res)
            x1 = s.pml_width + u.resolve(cx + s.wg_width / 2, res)
            density[x0:x1, :extent] = 1.0          # output guide, runs along j
            y0 = s.pml_width + u.resolve(cy - s.wg_width / 2, res)
            y1 = s.pml_width + u.resolve(cy + s.wg_width / 2, res)
            density[:extent, y0:y1] = 1.0          # input guide, runs along i
            width = u.resolve(s.wg_width + 2 * s.wg_mode_padding, res)
            port_in = modes.WaveguidePort(
                x=s.pml_width + u.resolve(s.port_pml_offset, res),
                y=s.pml_width + u.resolve(cy, res), width=width, order=1,
                dir=defs.Direction.X_POS, offset=monitor)
            port_out = modes.WaveguidePort(
                x=s.pml_width + u.resolve(cx, res),
                y=s.pml_width + u.resolve(s.port_pml_offset, res), width=width, order=1,
                dir=defs.Direction.Y_POS, offset=monitor)
            if init_design_region:
                density[self.design_region] = 1.0
            self._density_bg = density
            self._ports = [port_in, port_out]

    class OffsetModeConverterModel(mode_converter.model.ModeConverterModel):
        """The package's mode converter with the left and right waveguides shifted
        vertically (along j) by their own offsets."""

        def __init__(self, params, spec, offset_left_nm: int, offset_right_nm: int):
            self._off_l = offset_left_nm * u.nm
            self._off_r = offset_right_nm * u.nm
            super().__init__(params, spec)

        def _make_bg_density_and_ports(self, init_design_region: bool = False):
            p, s = self.params, self.spec
            res = p.resolution
            density = np.zeros(self.shape)
            monitor = u.resolve(s.input_monitor_offset, res)
            extent_i, extent_j = s.extent_ij(res)
            extent = s.pml_width + u.resolve(s.wg_length, res)
            cl = extent_j / 2 + self._off_l
            cr = extent_j / 2 + self._off_r
            density[:extent, u.resolve(cl - s.left_wg_width / 2, res):
                    u.resolve(cl + s.left_wg_width / 2, res)] = 1.0
            density[-extent - 1:, u.resolve(cr - s.right_wg_width / 2, res):
                    u.resolve(cr + s.right_wg_width / 2, res)] = 1.0
            port_l = modes.WaveguidePort(
                x=s.pml_width + u.resolve(s.port_pml_offset, res), y=u.resolve(cl, res),
                width=u.resolve(s.left_wg_width + 2 * s.left_wg_mode_padding, res),
                order=s.left_wg_mode_order, dir=defs.Direction.X_POS, offset=monitor)
            port_r = modes.WaveguidePort(
                x=u.resolve(extent_i - s.port_pml_offset, res) - s.pml_width,
                y=u.resolve(cr, res),
                width=u.resolve(s.right_wg_width + 2 * s.right_wg_mode_padding, res),
                order=s.right_wg_mode_order, dir=defs.Direction.X_NEG, offset=monitor)
            if init_design_region:
                density[self.design_region] = 1.0
            self._density_bg = density
            self._ports = [port_l, port_r]

    return OffsetBendModel, OffsetModeConverterModel


@functools.lru_cache(maxsize=64)
def build_model(instance: DeviceInstance):
    """The ceviche-challenges model of an instance (cached).

    Raises:
      ImportError: the 'photonics' extra is not installed.
    """
    cc, u, _, _, waveguide_bend, mode_converter, beam_splitter, wdm = _cc()
    g = grid_nm(instance.device)
    params = cc.params.CevicheSimParams(resolution=g * u.nm,
                                        wavelengths=u.Array(list(WAVELENGTHS_NM), u.nm))
    P = dict(instance.params)
    dev = instance.device
    di, dj = DESIGN_NM[dev]
    common = dict(port_pml_offset=_PORT_PML_OFFSET * u.nm, cladding_permittivity=_CLAD,
                  slab_permittivity=_SLAB, input_monitor_offset=_MONITOR_OFFSET * u.nm,
                  pml_width=_PML)
    OffsetBend, OffsetMC = _model_classes()
    if dev == "waveguide_bend":
        spec = waveguide_bend.spec.WaveguideBendSpec(
            wg_width=P["wg_width"] * u.nm, wg_length=_WG_LENGTH * u.nm,
            wg_mode_padding=_MODE_PAD * u.nm, padding=_PADDING * u.nm,
            variable_region_size=(di * u.nm, dj * u.nm), **common)
        return OffsetBend(params, spec, P["offset_in"], P["offset_out"])
    if dev == "mode_converter":
        spec = mode_converter.spec.ModeConverterSpec(
            left_wg_width=P["left_width"] * u.nm, left_wg_mode_padding=_MODE_PAD * u.nm,
            left_wg_mode_order=1, right_wg_width=P["right_width"] * u.nm,
            right_wg_mode_padding=_MODE_PAD * u.nm, right_wg_mode_order=2,
            wg_length=_WG_LENGTH * u.nm, padding=_PADDING * u.nm,
            variable_region_size=(di * u.nm, dj * u.nm), **common)
        return OffsetMC(params, spec, P["offset_left"], P["offset_right"])
    if dev == "beam_splitter":
        spec = beam_splitter.spec.BeamSplitterSpec(
            wg_width=P["wg_width"] * u.nm, wg_length=_WG_LENGTH * u.nm,
            wg_separation=P["wg_separation"] * u.nm, wg_mode_padding=_MODE_PAD_SPLITTER * u.nm,
            variable_region_size=(di * u.nm, dj * u.nm), design_symmetry=None, **common)
        return beam_splitter.model.BeamSplitterModel(params, spec)
    # wdm: layout as in invrs-gym's lightweight WDM (design centred, outputs symmetric)
    pml_nm = _PML * g
    ext_i = di + 2 * _WG_LENGTH + 2 * pml_nm
    ext_j = dj + 2 * _PADDING + 2 * pml_nm
    cj, ci = ext_j / 2, ext_i / 2
    d = P["output_half_separation"]
    spec = wdm.spec.WdmSpec(
        extent_ij=u.Array([ext_i, ext_j], u.nm), input_wg_j=(cj + P["offset_in"]) * u.nm,
        output_wgs_j=u.Array([cj - d, cj + d], u.nm), wg_width=P["wg_width"] * u.nm,
        wg_mode_padding=_MODE_PAD * u.nm, input_mode_i=(pml_nm + _PORT_PML_OFFSET) * u.nm,
        output_mode_i=(ext_i - pml_nm - _PORT_PML_OFFSET) * u.nm,
        variable_region=(u.Array([ci - di / 2, cj - dj / 2], u.nm),
                         u.Array([ci + di / 2, cj + dj / 2], u.nm)),
        cladding_permittivity=_CLAD, slab_permittivity=_SLAB,
        input_monitor_offset=_MONITOR_OFFSET * u.nm, pml_width=_PML)
    return wdm.model.WdmModel(params, spec)


@functools.lru_cache(maxsize=64)
def simulator(instance: DeviceInstance):
    """The (cached) `Simulator` of an instance at `WAVELENGTHS_NM`, exciting port 1."""
    return Simulator(build_model(instance), WAVELENGTHS_NM, excite_port=0)


def describe(instance: DeviceInstance) -> dict[str, Any]:
    """A JSON-friendly description of an instance."""
    return {"device": instance.device, "seed": instance.seed, **dict(instance.params),
            "grid_nm": grid_nm(instance.device), "design_shape": list(instance.design_shape)}
