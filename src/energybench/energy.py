"""Energy attribution: joules per domain and per run phase, from meter samples.

Pure functions over numpy arrays (plus thin adapters from the SAMPLES_SCHEMA frame). The model:

* a **counter** domain (``kind="energy"``, cumulative joules) is linearly interpolated between
  reads, so its energy over ``[t0, t1]`` is ``E(t1) - E(t0)`` with both ends interpolated;
* a **power** domain (``kind="power"``, watts) is linearly interpolated between samples and
  integrated exactly (the trapezoid rule, clipped at ``t0``/``t1`` with interpolated boundary
  values).

Both are expressed as one function :func:`cumulative_at` (joules since the first sample at any
time), so whole window, prefill, decode and fixed-grid energies all come from differences of it.
Outside the sampled span a series is extrapolated (counter: slope of the nearest interval; power:
the nearest value held) -- but only within one sample period; farther than that the domain does
not *cover* the window and its energy is reported as unknown (``None``) instead of invented.

Totals (the run-level ``energy_j`` ...) add top-level domains only (``parent is None``; RAPL
``core``/``uncore`` and Power Gadget ``IA``/``GT`` are inside the package: never added; Linux
Documentation/power/powercap/powercap.rst, Intel SDM Vol. 3B §15.10), each domain name once
(measured meters win over estimates), an estimate domain only when no *measured* domain of the
same component exists, and ``psys`` only when no measured CPU package domain exists (psys is the
platform domain and contains the package). A measured ``system`` domain (a wall meter: the whole
machine, power supply included) contains every other one: when present, it alone is the total and
the others are reported beside it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from energybench.meters.base import Domain

#: SAMPLES_SCHEMA ``unit`` of a counter sample (joules since the meter was opened) and a power one.
UNIT_ENERGY = "J"
UNIT_POWER = "W"

#: A window shorter than this many update periods of its slowest meter is flagged
#: (our rule: a window of >= 10 update periods bounds the counter's quantisation error to ~10 %).
SHORT_WINDOW_FACTOR = 10.0

#: NVML clocks-event (throttle) reasons that mean a real slowdown: SwPowerCap 0x4, HwSlowdown 0x8,
#: SwThermalSlowdown 0x20, HwThermalSlowdown 0x40, HwPowerBrakeSlowdown 0x80 (pynvml constants;
#: GpuIdle, application clocks, sync boost and display clock settings are not throttling).
THROTTLE_MASK = 0x4 | 0x8 | 0x20 | 0x40 | 0x80

#: The RUNS_SCHEMA energy columns (``RunEnergy.columns``), in schema order.
ENERGY_COLUMNS = (
    "energy_source", "meters", "energy_j", "energy_net_j", "prefill_energy_j", "decode_energy_j",
    "prefill_energy_net_j", "decode_energy_net_j", "idle_power_w", "avg_power_w", "peak_power_w",
    "sample_jitter_p99_ms", "domains", "flag_short_window", "flag_estimate", "flag_throttled",
)


# ----------------------------------------------------------------------------- counters


def counter_delta(prev: int, cur: int, max_range: int) -> int:
    """Increase of a wrapping counter between two raw reads (same unit as the counter).

    ``delta = max - prev + cur`` when the counter went backwards (it wrapped at ``max_range``;
    ``max_energy_range_uj`` in Linux Documentation/power/powercap/powercap.rst). Python ints: no
    overflow however long it runs.
    """
    if cur >= prev:
        return cur - prev
    return max_range - prev + cur


# ----------------------------------------------------------------------------- series


@dataclass(frozen=True)
class Series:
    """One domain's samples: ``t_ns`` (int64, strictly increasing) and ``value`` (J or W)."""

    t_ns: np.ndarray
    value: np.ndarray
    kind: str  # "energy" (cumulative J) | "power" (W)

    def __len__(self) -> int:
        return int(self.t_ns.size)

    @property
    def period_ns(self) -> float | None:
        """Median interval between samples (ns), None with fewer than two samples."""
        if self.t_ns.size < 2:
            return None
        return float(np.median(np.diff(self.t_ns)))


def make_series(t_ns: Iterable[int] | np.ndarray, value: Iterable[float] | np.ndarray, kind: str) -> Series:
    """Sorted, de-duplicated (last value per timestamp wins), NaN-free series."""
    if kind not in ("energy", "power"):
        raise ValueError(f"kind must be 'energy' or 'power', not {kind!r}")
    t = np.asarray(list(t_ns) if not isinstance(t_ns, np.ndarray) else t_ns, dtype=np.int64)
    v = np.asarray(list(value) if not isinstance(value, np.ndarray) else value, dtype=np.float64)
    if t.shape != v.shape:
        raise ValueError(f"t_ns and value differ in length ({t.size} vs {v.size})")
    ok = np.isfinite(v)
    t, v = t[ok], v[ok]
    order = np.argsort(t, kind="stable")
    t, v = t[order], v[order]
    if t.size > 1:
        keep = np.ones(t.size, dtype=bool)
        keep[:-1] = t[1:] != t[:-1]  # keep the last of equal timestamps
        t, v = t[keep], v[keep]
    return Series(t, v, kind)


def _cum_power(series: Series) -> np.ndarray:
    """Trapezoid integral (J) of a power series at each of its own samples, from the first."""
    dt = np.diff(series.t_ns).astype(np.float64) / 1e9
    seg = 0.5 * (series.value[1:] + series.value[:-1]) * dt
    return np.concatenate([[0.0], np.cumsum(seg)])


def cumulative_at(series: Series, t_ns: np.ndarray | Sequence[int] | int) -> np.ndarray:
    """Joules since the series' first sample, at arbitrary times (exact for the linear model).

    Counter: linear interpolation of the cumulative values. Power: the exact integral of the
    linearly interpolated power. Outside the sampled span: counter slope of the nearest interval,
    or the nearest power held constant (callers check :func:`coverage_gap_ns` first).
    """
    if len(series) == 0:
        raise ValueError("empty series")
    tq = np.atleast_1d(np.asarray(t_ns, dtype=np.int64))
    ref = series.t_ns[0]
    ts = (series.t_ns - ref).astype(np.float64) / 1e9
    tq_s = (tq - ref).astype(np.float64) / 1e9
    v = series.value
    n = ts.size
    if series.kind == "energy":
        base = v - v[0]
        if n == 1:
            return np.zeros(tq.shape)
        out = np.interp(tq_s, ts, base)
        lo_slope = (base[1] - base[0]) / (ts[1] - ts[0])
        hi_slope = (base[-1] - base[-2]) / (ts[-1] - ts[-2])
        out = np.where(tq_s < ts[0], base[0] + lo_slope * (tq_s - ts[0]), out)
        out = np.where(tq_s > ts[-1], base[-1] + hi_slope * (tq_s - ts[-1]), out)
        return out
    # power
    if n == 1:
        return v[0] * tq_s
    cum = _cum_power(series)
    idx = np.clip(np.searchsorted(ts, tq_s, side="right") - 1, 0, n - 2)
    t_i, t_j = ts[idx], ts[idx + 1]
    p_i, p_j = v[idx], v[idx + 1]
    dt = tq_s - t_i
    span = t_j - t_i
    inside = cum[idx] + p_i * dt + (p_j - p_i) * dt * dt / (2.0 * span)
    before = v[0] * (tq_s - ts[0])
    after = cum[-1] + v[-1] * (tq_s - ts[-1])
    return np.where(tq_s < ts[0], before, np.where(tq_s > ts[-1], after, inside))


def coverage_gap_ns(series: Series, t0_ns: int, t1_ns: int) -> int:
    """How far (ns) the window ``[t0, t1]`` reaches outside the sampled span (0 = covered)."""
    if len(series) == 0:
        return max(int(t1_ns) - int(t0_ns), 0) or 1
    return int(max(int(series.t_ns[0]) - int(t0_ns), int(t1_ns) - int(series.t_ns[-1]), 0))


def window_energy(series: Series, t0_ns: int, t1_ns: int) -> float:
    """Energy (J) of one domain over ``[t0, t1]`` (interpolated ends; see module docstring)."""
    e = cumulative_at(series, np.array([t0_ns, t1_ns], dtype=np.int64))
    return float(e[1] - e[0])


def grid_edges(t0_ns: int, t1_ns: int, interval_ns: int) -> np.ndarray:
    """Edges ``t0, t0+L, ..., t1`` (int64), the last partial interval merged into its neighbour."""
    t0_ns, t1_ns, interval_ns = int(t0_ns), int(t1_ns), max(int(interval_ns), 1)
    n = max((t1_ns - t0_ns) // interval_ns, 1)
    edges = t0_ns + np.arange(n + 1, dtype=np.int64) * interval_ns
    edges[-1] = t1_ns
    return edges


def peak_interval_ns(domain: Domain, series: Series) -> int:
    """Interval over which peak power is averaged: max(10 update periods, one sample period).

    A counter read twice within its own refresh period shows 0 W and then a spike; averaging over
    ten refreshes keeps the peak within ~10% of the truth (the same rule as the short-window flag).
    """
    period = series.period_ns or 0.0
    return int(max(SHORT_WINDOW_FACTOR * domain.update_period_s * 1e9, period, 1.0))


# ----------------------------------------------------------------------------- per domain


@dataclass
class DomainEnergy:
    """Attribution of one domain over one run window. Energies in J, powers in W."""

    domain: Domain
    key: str
    n_samples: int
    sample_period_s: float | None
    covered: bool
    gap_s: float
    energy_j: float | None = None
    energy_net_j: float | None = None
    prefill_energy_j: float | None = None
    decode_energy_j: float | None = None
    avg_power_w: float | None = None
    peak_power_w: float | None = None
    idle_power_w: float | None = None
    rise_s: float = 0.0  # seconds of the window start replaced by steady-state power (GPU protocol)
    note: str | None = None  # appended to the domain's source in results (provenance)

    def to_struct(self) -> dict[str, Any]:
        """One ``domains`` entry of RUNS_SCHEMA (results.DOMAIN_STRUCT)."""
        d = self.domain
        source = d.source if not self.note else f"{d.source}; {self.note}"
        return {
            "domain": d.name, "meter": d.meter, "kind": d.kind, "component": d.component,
            "parent": d.parent, "estimate": bool(d.estimate), "source": source,
            "update_period_s": float(d.update_period_s), "sample_period_s": self.sample_period_s,
            "n_samples": int(self.n_samples), "energy_j": self.energy_j,
            "energy_net_j": self.energy_net_j, "prefill_energy_j": self.prefill_energy_j,
            "decode_energy_j": self.decode_energy_j, "avg_power_w": self.avg_power_w,
            "peak_power_w": self.peak_power_w, "idle_power_w": self.idle_power_w,
        }


def attribute_domain(domain: Domain, series: Series, t_start_ns: int, t_end_ns: int, *,
                     t_prefill_end_ns: int | None = None, idle_power_w: float | None = None,
                     key: str | None = None, max_extrapolate_ns: float | None = None,
                     rise_s: float = 0.0) -> DomainEnergy:
    """Energy of one domain over ``[t_start, t_end]`` (and its prefill/decode split).

    ``max_extrapolate_ns``: how far the window may reach outside the samples; default one sample
    period (the series' median interval, or the domain's update period with a single sample).
    Farther than that, energies are ``None`` and ``covered`` is False.

    ``rise_s`` > 0 (the GPU protocol's rise-time handling, :mod:`energybench.gpu_protocol`): the
    first ``rise_s`` seconds are not trusted (a lagging sensor still ramps up); their energy is
    the steady-state power of ``[t_start + rise_s, t_end]`` times ``rise_s``. Prefill inside the
    rise gets steady-state power too. Not applied (``note`` says so) when the window is not
    longer than ``rise_s``. Average power follows the corrected energy; peak power does not.
    """
    t0, t1 = int(t_start_ns), int(t_end_ns)
    if t1 < t0:
        raise ValueError(f"window ends before it starts (t_start_ns={t0}, t_end_ns={t1})")
    key = key or domain.name
    n_in = int(np.count_nonzero((series.t_ns >= t0) & (series.t_ns <= t1))) if len(series) else 0
    period_ns = series.period_ns
    result = DomainEnergy(domain=domain, key=key, n_samples=n_in,
                          sample_period_s=None if period_ns is None else period_ns / 1e9,
                          covered=False, gap_s=0.0, idle_power_w=idle_power_w)
    gap = coverage_gap_ns(series, t0, t1)
    result.gap_s = gap / 1e9
    limit = max_extrapolate_ns
    if limit is None:
        limit = period_ns if period_ns is not None else domain.update_period_s * 1e9
    minimum = 2 if domain.kind == "energy" else 1
    if len(series) < minimum or gap > limit:
        return result
    result.covered = True
    duration_s = (t1 - t0) / 1e9
    pts = [t0, t1] if t_prefill_end_ns is None else [t0, int(t_prefill_end_ns), t1]
    e = cumulative_at(series, np.asarray(pts, dtype=np.int64))
    energy = float(e[-1] - e[0])
    result.energy_j = energy
    if t_prefill_end_ns is not None:
        result.prefill_energy_j = float(e[1] - e[0])
        result.decode_energy_j = float(e[2] - e[1])
    if rise_s > 0:
        if duration_s > rise_s:
            _discard_rise(result, series, t0, t1, t_prefill_end_ns, rise_s)
            energy = float(result.energy_j)
        else:
            result.note = (f"rise time {rise_s:g} s NOT discarded: the window ({duration_s:.3g} s) is not longer "
                           "(GPU protocol)")
    if duration_s > 0:
        result.avg_power_w = energy / duration_s
        result.peak_power_w = _domain_peak(domain, series, t0, t1)
    if idle_power_w is not None:
        result.energy_net_j = energy - idle_power_w * duration_s
    return result


def _discard_rise(result: DomainEnergy, series: Series, t0: int, t1: int, t_pf: int | None, rise_s: float) -> None:
    """Replace the energy of ``[t0, t0 + rise_s]`` by steady-state power x ``rise_s`` (in place)."""
    t_r = t0 + int(round(rise_s * 1e9))
    c = cumulative_at(series, np.asarray([t_r, t1] + ([t_pf] if t_pf is not None else []), dtype=np.int64))
    steady_j = float(c[1] - c[0])
    steady_w = steady_j / ((t1 - t_r) / 1e9)
    result.energy_j = steady_w * rise_s + steady_j
    if t_pf is not None:
        if t_pf <= t_r:
            prefill = steady_w * (t_pf - t0) / 1e9
        else:
            prefill = steady_w * rise_s + float(c[2] - c[0])
        result.prefill_energy_j = prefill
        result.decode_energy_j = result.energy_j - prefill
    result.rise_s = rise_s
    result.note = (f"first {rise_s:g} s (rise time) replaced by the steady-state {steady_w:.4g} W "
                   "(GPU protocol, Yang et al. SC'24)")


def _domain_peak(domain: Domain, series: Series, t0: int, t1: int) -> float:
    """Highest power in the window: max sample (power domains) or max interval average (counters)."""
    if domain.kind == "power":
        inside = series.value[(series.t_ns >= t0) & (series.t_ns <= t1)]
        ref = series.t_ns[0]
        ends = np.interp(np.array([t0 - ref, t1 - ref], dtype=np.float64),
                         (series.t_ns - ref).astype(np.float64), series.value)
        return float(max(np.max(inside) if inside.size else -math.inf, *ends))
    interval = peak_interval_ns(domain, series)
    edges = grid_edges(t0, t1, interval)
    energies = np.diff(cumulative_at(series, edges))
    return float(np.max(energies / (np.diff(edges) / 1e9)))


# ----------------------------------------------------------------------------- keys and frames


def domain_keys(domains: Sequence[Domain]) -> dict[tuple[str, str], str]:
    """Unique key per (meter, domain): the domain name, or ``meter/domain`` when two meters share it."""
    counts: dict[str, int] = {}
    for d in domains:
        counts[d.name] = counts.get(d.name, 0) + 1
    return {(d.meter, d.name): (d.name if counts[d.name] == 1 else f"{d.meter}/{d.name}") for d in domains}


def _lookup(mapping: Mapping[str, float] | None, domain: Domain, key: str) -> float | None:
    if not mapping:
        return None
    for k in (key, f"{domain.meter}/{domain.name}", domain.name):
        if k in mapping and mapping[k] is not None:
            return float(mapping[k])
    return None


def series_from_frame(samples: pl.DataFrame) -> dict[tuple[str, str], Series]:
    """Group a SAMPLES_SCHEMA frame into one :class:`Series` per (meter, domain)."""
    out: dict[tuple[str, str], Series] = {}
    if samples is None or samples.height == 0:
        return out
    cols = samples.select("meter", "domain", "t_ns", "value", "unit")
    for (meter, dom), part in cols.group_by(["meter", "domain"], maintain_order=True):
        units = set(part["unit"].drop_nulls().to_list())
        kind = "power" if units == {UNIT_POWER} else "energy"
        out[(str(meter), str(dom))] = make_series(part["t_ns"].to_numpy(), part["value"].cast(pl.Float64).to_numpy(), kind)
    return out


def domain_from_struct(entry: Mapping[str, Any]) -> Domain:
    """Rebuild a :class:`Domain` from a stored ``domains`` struct (e.g. when re-attributing a run)."""
    return Domain(name=entry["domain"], kind=entry["kind"], meter=entry["meter"],
                  component=entry.get("component") or "other", source=entry.get("source") or "",
                  update_period_s=float(entry.get("update_period_s") or 0.0),
                  parent=entry.get("parent"), estimate=bool(entry.get("estimate")))


# ----------------------------------------------------------------------------- per run


@dataclass
class RunEnergy:
    """Attribution of one run: every domain, which of them count in totals, and why not others."""

    domains: list[DomainEnergy]
    counted: list[DomainEnergy]
    window_s: float
    columns: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def counted_domains(results: Sequence[DomainEnergy]) -> list[DomainEnergy]:
    """The domains whose energies add up to the run total (rules in the module docstring)."""
    top = [r for r in results if r.domain.parent is None]
    measured_components = {r.domain.component for r in top if not r.domain.estimate}
    if "psys" in measured_components:  # the platform domain contains the package and DRAM
        measured_components |= {"cpu", "dram"}
    chosen: dict[str, DomainEnergy] = {}
    for r in top:  # one per name: a measured domain replaces an estimate; else the first (selection order)
        if r.domain.estimate and r.domain.component in measured_components:
            continue
        cur = chosen.get(r.domain.name)
        if cur is None or (cur.domain.estimate and not r.domain.estimate):
            chosen[r.domain.name] = r
    picked = list(chosen.values())
    whole = [r for r in picked if r.domain.component == "system" and not r.domain.estimate]
    if whole:  # a meter of the whole machine (a wall meter) contains every other domain: it is the total
        return whole[:1]
    has_cpu = any(r.domain.component == "cpu" and not r.domain.estimate for r in picked)
    return [r for r in picked if not (r.domain.component == "psys" and has_cpu)]


def _sum(values: Iterable[float | None]) -> float | None:
    total = 0.0
    for v in values:
        if v is None:
            return None
        total += v
    return total


def _throttled(samples: pl.DataFrame | None, t0: int, t1: int) -> bool | None:
    if samples is None or samples.height == 0 or "throttle_reasons" not in samples.columns:
        return None
    vals = samples.filter((pl.col("t_ns") >= t0) & (pl.col("t_ns") <= t1))["throttle_reasons"].drop_nulls().drop_nans()
    if vals.len() == 0:
        return None
    return any(int(v) & THROTTLE_MASK for v in vals.to_list())


def attribute_run(domains: Sequence[Domain], samples: pl.DataFrame | Mapping[tuple[str, str], Series], *,
                  t_start_ns: int, t_end_ns: int, t_prefill_end_ns: int | None = None,
                  idle_power_w: Mapping[str, float] | None = None,
                  jitter_p99_ms: float | None = None,
                  rise_s: Mapping[str, float] | None = None) -> RunEnergy:
    """Attribute every domain over one run and build the RUNS_SCHEMA energy columns.

    ``samples``: a SAMPLES_SCHEMA frame (what :meth:`Sampler.to_frame` returns) or series per
    (meter, domain). ``idle_power_w``: W per domain key (see :func:`domain_keys`; plain domain
    names also match); a domain without one gets ``energy_net_j = None``. ``rise_s``: seconds of
    rise time to discard per domain (same keys; :meth:`GpuProtocol.rise_by_domain` gives them).
    """
    frame = samples if isinstance(samples, pl.DataFrame) else None
    series = series_from_frame(samples) if isinstance(samples, pl.DataFrame) else dict(samples)
    keys = domain_keys(domains)
    t0, t1 = int(t_start_ns), int(t_end_ns)
    window_s = (t1 - t0) / 1e9
    warnings: list[str] = []
    results: list[DomainEnergy] = []
    for d in domains:
        key = keys[(d.meter, d.name)]
        s = series.get((d.meter, d.name))
        if s is not None and s.kind != d.kind:
            warnings.append(f"{key}: samples are {s.kind} but the domain is {d.kind}; using the domain's kind")
            s = Series(s.t_ns, s.value, d.kind)
        if s is None:
            s = make_series([], [], d.kind)
        r = attribute_domain(d, s, t0, t1, t_prefill_end_ns=t_prefill_end_ns,
                             idle_power_w=_lookup(idle_power_w, d, key), key=key,
                             rise_s=_lookup(rise_s, d, key) or 0.0)
        if r.covered and r.note and r.rise_s == 0:
            warnings.append(f"{key}: {r.note}")
        if not r.covered:
            warnings.append(
                f"{key} ({d.meter}): samples do not cover the window (n={len(s)}, gap {r.gap_s * 1e3:.1f} ms "
                "beyond one sample period); its energy is unknown")
        results.append(r)
    counted = counted_domains(results)
    prefill_s = None if t_prefill_end_ns is None else (int(t_prefill_end_ns) - t0) / 1e9
    columns = _columns(results, counted, window_s, prefill_s, jitter_p99_ms,
                       _throttled(frame, t0, t1), t0, t1, series)
    if columns["energy_j"] is None and counted:
        warnings.append("total energy unknown: a counted domain does not cover the window")
    return RunEnergy(domains=results, counted=counted, window_s=window_s, columns=columns, warnings=warnings)


def _columns(results: list[DomainEnergy], counted: list[DomainEnergy], window_s: float, prefill_s: float | None,
             jitter_p99_ms: float | None, throttled: bool | None, t0: int, t1: int,
             series: Mapping[tuple[str, str], Series]) -> dict[str, Any]:
    cols: dict[str, Any] = dict.fromkeys(ENERGY_COLUMNS)
    cols["domains"] = [r.to_struct() for r in results]
    cols["sample_jitter_p99_ms"] = jitter_p99_ms
    cols["flag_throttled"] = throttled
    cols["flag_estimate"] = any(r.domain.estimate for r in counted)
    if not counted:
        cols["energy_source"] = "none"
        cols["meters"] = ""
        cols["flag_short_window"] = False
        return cols
    cols["energy_source"] = "estimate" if cols["flag_estimate"] else "measured"
    cols["meters"] = ",".join(dict.fromkeys(r.domain.meter for r in counted))
    slowest = max(r.domain.update_period_s for r in counted)
    cols["flag_short_window"] = bool(window_s < SHORT_WINDOW_FACTOR * slowest)
    cols["energy_j"] = _sum(r.energy_j for r in counted)
    cols["idle_power_w"] = _sum(r.idle_power_w for r in counted)
    if cols["energy_j"] is not None and cols["idle_power_w"] is not None:
        cols["energy_net_j"] = cols["energy_j"] - cols["idle_power_w"] * window_s
    if prefill_s is not None:
        cols["prefill_energy_j"] = _sum(r.prefill_energy_j for r in counted)
        cols["decode_energy_j"] = _sum(r.decode_energy_j for r in counted)
        idle = cols["idle_power_w"]
        if idle is not None and cols["prefill_energy_j"] is not None:
            cols["prefill_energy_net_j"] = cols["prefill_energy_j"] - idle * prefill_s
            cols["decode_energy_net_j"] = cols["decode_energy_j"] - idle * (window_s - prefill_s)
    if cols["energy_j"] is not None and window_s > 0:
        cols["avg_power_w"] = cols["energy_j"] / window_s
        cols["peak_power_w"] = _total_peak(counted, series, t0, t1)
    return cols


def _total_peak(counted: list[DomainEnergy], series: Mapping[tuple[str, str], Series], t0: int, t1: int) -> float | None:
    """Highest total power over the common interval (the largest of the domains' peak intervals)."""
    pairs = []
    for r in counted:
        s = series.get((r.domain.meter, r.domain.name))
        if s is None or len(s) == 0:
            return None
        pairs.append((r.domain, Series(s.t_ns, s.value, r.domain.kind)))
    interval = max(peak_interval_ns(d, s) for d, s in pairs)
    edges = grid_edges(t0, t1, interval)
    total = sum(np.diff(cumulative_at(s, edges)) for _, s in pairs)
    return float(np.max(total / (np.diff(edges) / 1e9)))


# ----------------------------------------------------------------------------- idle baseline


def idle_power_from_series(domain: Domain, series: Series, t0_ns: int, t1_ns: int) -> float | None:
    """Median power (W) of one domain over an idle window.

    Power domains: the median sample inside the window. Counters: the median of interval averages
    over blocks of max(10 update periods, one sample period) -- shorter blocks of a coarse counter
    alternate between 0 W and spikes. Fewer than three blocks: the window average.
    """
    if len(series) == 0 or t1_ns <= t0_ns:
        return None
    if coverage_gap_ns(series, t0_ns, t1_ns) > (series.period_ns or domain.update_period_s * 1e9):
        return None
    if domain.kind == "power":
        inside = series.value[(series.t_ns >= t0_ns) & (series.t_ns <= t1_ns)]
        if inside.size == 0:
            ref = series.t_ns[0]
            return float(np.mean(np.interp(np.array([t0_ns - ref, t1_ns - ref], dtype=np.float64),
                                           (series.t_ns - ref).astype(np.float64), series.value)))
        return float(np.median(inside))
    if len(series) < 2:
        return None
    edges = grid_edges(t0_ns, t1_ns, peak_interval_ns(domain, series))
    power = np.diff(cumulative_at(series, edges)) / (np.diff(edges) / 1e9)
    if power.size < 3:
        return window_energy(series, t0_ns, t1_ns) / ((t1_ns - t0_ns) / 1e9)
    return float(np.median(power))


def idle_baseline(samples: pl.DataFrame, domains: Sequence[Domain], t0_ns: int, t1_ns: int) -> dict[str, float]:
    """Idle power per domain key (W): the median over the idle window ``[t0_ns, t1_ns]``.

    ``samples``: a SAMPLES_SCHEMA frame covering the window (e.g. from
    :meth:`~energybench.sampling.Sampler.measure_idle`); ``domains`` give kinds and update periods.
    A domain without samples, or whose samples do not cover the window, gets no entry.
    """
    series = series_from_frame(samples)
    keys = domain_keys(domains)
    out: dict[str, float] = {}
    for d in domains:
        s = series.get((d.meter, d.name))
        p = None if s is None else idle_power_from_series(d, s, int(t0_ns), int(t1_ns))
        if p is not None:
            out[keys[(d.meter, d.name)]] = p
    return out
