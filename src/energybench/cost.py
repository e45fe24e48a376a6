"""Joules into money and carbon: cost and CO2e per 1M output tokens.

``kWh per 1M output tokens = J/output token x 1e6 / 3.6e6`` (1 kWh = 3.6 MJ, SI). Money is that
times a price per kWh (``--price-per-kwh``, in your currency); CO2e is that times a grid carbon
intensity in gCO2e/kWh (``--carbon-intensity``, or ``--region`` looked up in :data:`REGIONS`).
Both are linear in the energy, so the energy's percentile-bootstrap CI maps onto them exactly;
an estimated energy (TDP x load) stays an estimate in every number made from it.

The energy is the gross energy the meters saw (``j_per_output_token``): the electricity drawn,
idle share included, over the measured domains only (a CPU package and DRAM are not the wall
socket: power supply losses, fans and the rest of the machine are not in it).

:data:`REGIONS`: Ember, "Yearly Electricity Data" (ember-energy.org/data/yearly-electricity-data,
CC BY 4.0), the emissions intensity of each country's electricity *generation* in gCO2e/kWh,
lifecycle emissions (upstream methane, supply chain and manufacturing included, all gases as CO2
equivalent over 100 years: Ember's methodology), data year 2024. Generation, not consumption:
imports are not counted, so importers (Switzerland) read lower than their consumption mix.
The values were read from Ember's API (``country_overview_yearly``,
``emissions_intensity_gco2_per_kwh``) as mirrored by the Green Web Foundation's co2.js
(``data/output/average-intensities.json``, update of 2025-08-03). Annual averages: the grid's
intensity at a given hour can be far from its yearly mean; use ``--carbon-intensity`` for a
contract's or an hour's figure.
"""

from __future__ import annotations

from dataclasses import dataclass

from energybench.errors import UsageError

#: Joules in one kilowatt-hour (SI: 1 kWh = 1000 W x 3600 s).
J_PER_KWH = 3.6e6


@dataclass(frozen=True)
class GridIntensity:
    """A region's annual average grid carbon intensity and where it comes from."""

    code: str
    name: str
    g_per_kwh: float
    year: int
    source: str


_EMBER = "Ember Yearly Electricity Data"

#: Annual averages, data year 2024 (see the module docstring for the source).
REGIONS: dict[str, GridIntensity] = {r.code: r for r in (
    GridIntensity(code, name, g, 2024, _EMBER) for code, name, g in (
        ("WORLD", "World", 472.94),
        ("EU", "European Union (27)", 213.02),
        ("US", "United States", 383.55),
        ("CA", "Canada", 184.99),
        ("BR", "Brazil", 106.06),
        ("GB", "United Kingdom", 215.79),
        ("IE", "Ireland", 279.79),
        ("FR", "France", 44.18),
        ("DE", "Germany", 342.06),
        ("NL", "Netherlands", 252.70),
        ("ES", "Spain", 146.15),
        ("IT", "Italy", 287.75),
        ("PL", "Poland", 614.98),
        ("SE", "Sweden", 35.89),
        ("NO", "Norway", 30.75),
        ("CH", "Switzerland", 36.72),
        ("IN", "India", 708.96),
        ("CN", "China", 557.50),
        ("JP", "Japan", 483.73),
        ("KR", "South Korea", 415.65),
        ("TW", "Taiwan", 635.15),
        ("SG", "Singapore", 498.74),
        ("AU", "Australia", 553.76),
        ("ZA", "South Africa", 713.90),
    )
)}


@dataclass(frozen=True)
class Tariff:
    """What a kWh costs and emits. ``carbon_source`` says where the intensity comes from."""

    price_per_kwh: float | None = None
    carbon_g_per_kwh: float | None = None
    carbon_source: str | None = None

    def describe(self) -> str:
        parts = []
        if self.price_per_kwh is not None:
            parts.append(f"{self.price_per_kwh:g} per kWh")
        if self.carbon_g_per_kwh is not None:
            parts.append(f"{self.carbon_g_per_kwh:g} gCO2e/kWh ({self.carbon_source})")
        return ", ".join(parts)


def region(code: str) -> GridIntensity:
    """The table row of a region code (ISO 3166-1 alpha-2, EU or WORLD; any case)."""
    row = REGIONS.get(code.strip().upper())
    if row is None:
        raise UsageError(f"--region {code!r}: no grid carbon intensity shipped for it",
                         hint=f"use one of {', '.join(REGIONS)}, or give --carbon-intensity G (gCO2e/kWh)")
    return row


def resolve_tariff(price_per_kwh: float | None = None, carbon_intensity: float | None = None,
                   region_code: str | None = None) -> Tariff | None:
    """The tariff of ``--price-per-kwh``, ``--carbon-intensity`` / ``--region``; None when none is given."""
    if carbon_intensity is not None and region_code is not None:
        raise UsageError("--carbon-intensity and --region both give the grid's carbon intensity",
                         hint="give one of them")
    for flag, v in (("--price-per-kwh", price_per_kwh), ("--carbon-intensity", carbon_intensity)):
        if v is not None and not v >= 0:
            raise UsageError(f"{flag} {v}: must be a number >= 0")
    if region_code is not None:
        row = region(region_code)
        return Tariff(price_per_kwh, row.g_per_kwh, f"{row.name} {row.year} annual average, {row.source}")
    if price_per_kwh is None and carbon_intensity is None:
        return None
    source = "--carbon-intensity" if carbon_intensity is not None else None
    return Tariff(price_per_kwh, carbon_intensity, source)


Interval = tuple[float | None, float | None, float | None]  # value, CI low, CI high


@dataclass(frozen=True)
class Cost:
    """Per 1M output tokens: energy (kWh), money (in the price's currency) and CO2e (g), each with
    the energy's CI; ``estimate`` when the energy is an estimate."""

    kwh: Interval
    money: Interval | None
    co2e_g: Interval | None
    estimate: bool

    def to_dict(self) -> dict[str, object]:
        def d(iv: Interval | None) -> dict[str, object] | None:
            return None if iv is None else {"value": iv[0], "ci95": [iv[1], iv[2]]}

        return {"kwh": d(self.kwh), "money": d(self.money), "co2e_g": d(self.co2e_g), "estimate": self.estimate}


def _times(iv: Interval, factor: float) -> Interval:
    value, lo, hi = (None if v is None else v * factor for v in iv)
    return value, lo, hi


def per_million_output_tokens(j_per_token: Interval, tariff: Tariff, *, estimate: bool) -> Cost:
    """Cost and CO2e per 1M output tokens from J/output token (median, CI low, CI high)."""
    kwh = _times(j_per_token, 1e6 / J_PER_KWH)
    price, carbon = tariff.price_per_kwh, tariff.carbon_g_per_kwh
    return Cost(kwh=kwh, money=None if price is None else _times(kwh, price),
                co2e_g=None if carbon is None else _times(kwh, carbon), estimate=estimate)
