"""Joules into money and carbon: the conversion, the shipped region table, the flags, and the cost
table of ``compare`` (with the energy's CI and its estimate label carried through)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from energybench.compare import compare_results
from energybench.cost import J_PER_KWH, REGIONS, Tariff, per_million_output_tokens, region, resolve_tariff
from energybench.errors import UsageError
from energybench.metrics import with_run_metrics
from energybench.results import read_runs
from handmade_results import write_set


def test_joules_per_token_become_kwh_money_and_co2e_per_million_tokens():
    # 3.6 J/token x 1e6 tokens = 3.6 MJ = 1 kWh
    cost = per_million_output_tokens((3.6, 3.24, 4.32), Tariff(0.25, 400.0, "test"), estimate=False)
    assert cost.kwh == pytest.approx((1.0, 0.9, 1.2))
    assert cost.money == pytest.approx((0.25, 0.225, 0.30))
    assert cost.co2e_g == pytest.approx((400.0, 360.0, 480.0))
    only_price = per_million_output_tokens((0.036, None, None), Tariff(price_per_kwh=0.1), estimate=True)
    assert only_price.kwh[0] == pytest.approx(0.01) and only_price.kwh[1:] == (None, None)
    assert only_price.co2e_g is None and only_price.estimate
    assert J_PER_KWH == 1000 * 3600


def test_the_region_table_is_small_sourced_and_plausible():
    assert 15 <= len(REGIONS) <= 25
    for code, row in REGIONS.items():
        assert code == row.code == code.upper()
        assert row.year == 2024 and row.source.startswith("Ember")
        assert 10 < row.g_per_kwh < 1000, code  # gCO2e/kWh, not kg or t
    # hydro and nuclear grids are cleaner than coal grids; the world average lies between
    assert REGIONS["NO"].g_per_kwh < REGIONS["FR"].g_per_kwh < REGIONS["WORLD"].g_per_kwh < REGIONS["IN"].g_per_kwh
    assert region("de") is REGIONS["DE"]


def test_the_flags_resolve_to_a_tariff_or_say_what_is_wrong():
    assert resolve_tariff() is None
    t = resolve_tariff(0.3, region_code="fr")
    assert (t.price_per_kwh, t.carbon_g_per_kwh) == (0.3, REGIONS["FR"].g_per_kwh)
    assert "France 2024 annual average" in t.describe() and "Ember" in t.describe()
    assert resolve_tariff(carbon_intensity=250.0) == Tariff(None, 250.0, "--carbon-intensity")
    with pytest.raises(UsageError, match="both give"):
        resolve_tariff(carbon_intensity=100.0, region_code="US")
    with pytest.raises(UsageError, match="--price-per-kwh -1"):
        resolve_tariff(price_per_kwh=-1.0)
    with pytest.raises(UsageError, match="'XX'") as e:
        resolve_tariff(region_code="XX")
    assert "WORLD" in e.value.hint and "--carbon-intensity" in e.value.hint


def test_compare_gives_cost_per_configuration_with_the_energy_ci(tmp_path):
    base = write_set(tmp_path / "base", threads=(1, 2))
    new = write_set(tmp_path / "new", threads=(1,), seed=1, energy_source="estimate")
    c = compare_results(base, [new], tariff=resolve_tariff(0.2, 300.0))
    rows = {(r.set, r.configuration.knobs["n_threads"]): r.cost for r in c.costs}
    assert sorted(rows) == [("base", 1), ("base", 2), ("new", 1)]  # every configuration of every set
    runs = with_run_metrics(read_runs(base).lazy()).filter(pl.col("n_threads") == 1).collect()
    kwh = float(np.median(runs["j_per_output_token"].to_numpy())) * 1e6 / J_PER_KWH
    cost = rows[("base", 1)]
    assert cost.kwh[0] == pytest.approx(kwh) and cost.kwh[1] < kwh < cost.kwh[2]
    assert cost.money == pytest.approx(tuple(0.2 * x for x in cost.kwh))
    assert cost.co2e_g == pytest.approx(tuple(300.0 * x for x in cost.kwh))
    assert not cost.estimate and rows[("new", 1)].estimate


def test_the_cli_prints_the_cost_table(cli, tmp_path):
    base = write_set(tmp_path / "base", energy_source="estimate")
    new = write_set(tmp_path / "new", seed=1, energy_source="estimate")
    r = cli("compare", str(base), str(new), "--price-per-kwh", "0.30", "--region", "DE")
    assert r.returncode == 0, r.stderr
    assert ("cost and CO2e per 1M output tokens at 0.3 per kWh, 342.06 gCO2e/kWh (Germany 2024 annual average"
            in r.stdout)
    header = next(line for line in r.stdout.splitlines() if line.startswith("set "))
    assert header.split() == ["set", "configuration", "workload", "kWh", "/", "1M", "tok", "cost", "/", "1M", "tok",
                              "gCO2e", "/", "1M", "tok", "energy"]
    assert r.stdout.rstrip().splitlines()[-1].endswith("estimate")
    r = cli("compare", str(base), str(new), "--region", "DE", "--carbon-intensity", "100")
    assert r.returncode == 2 and "both give" in r.stderr
    r = cli("compare", str(base), str(new), "--region", "atlantis")
    assert r.returncode == 2 and "--region 'atlantis'" in r.stderr
