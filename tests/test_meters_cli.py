"""`energybench meters` through the real CLI (a subprocess)."""

from __future__ import annotations

import json
import os

import pytest

NO_RAPL = not os.path.isdir("/sys/class/powercap")
NO_GPU = not os.path.exists("/dev/nvidia0")


def test_json_report(cli):
    proc = cli("meters", "--json", "--no-measure", "--cpu-tdp-w", "65", env={"ENERGYBENCH_ENERGYLIB": ""})
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    rows = {r["name"]: r for r in rep["meters"]}
    assert set(rows) == {"rapl", "nvml", "amdsmi", "hwmon", "powermetrics", "powergadget", "estimate"}
    for r in rows.values():
        assert r["available"] or (r["reason"] and r["fix"]), r  # every unavailable meter says why and how
    est = rows["estimate"]
    assert est["available"] and "--cpu-tdp-w" in est["reason"] and est["domains"][0]["estimate"] is True
    if NO_RAPL and NO_GPU:
        assert rows["rapl"]["reason"] == "no powercap (RAPL) interface: not Linux, or a VM without RAPL"
        assert rep["measure_uses"] == {"meters": ["estimate"], "estimate": True,
                                       "warnings": rep["measure_uses"]["warnings"]}
        assert any("ESTIMATE" in w for w in rep["measure_uses"]["warnings"])


@pytest.mark.skipif(not (NO_RAPL and NO_GPU), reason="describes a machine without RAPL or GPU (like the CI VM)")
def test_human_output_on_a_machine_without_meters(cli):
    proc = cli("meters", "--no-measure", "--cpu-tdp-w", "65", env={"ENERGYBENCH_ENERGYLIB": ""})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "rapl: no powercap (RAPL) interface" in out and "fix:" in out
    assert "nvml: " in out and "powergadget: " in out and "PCM" in out
    assert "measure will use: estimate (CPU energy is an ESTIMATE)" in out
    assert "ESTIMATE" in proc.stderr  # the warning


def test_bad_tdp_is_a_usage_error(cli):
    proc = cli("meters", "--cpu-tdp-w", "-3")
    assert proc.returncode == 2
