"""``measure -- CMD``: a real child process, measured by the estimate meter or a RAPL stand-in."""

from __future__ import annotations

import sys
from pathlib import Path

import psutil
import pytest

from energybench.cmdmeasure import measure_command
from energybench.errors import UsageError
from energybench.meters import select_meters
from energybench.meters.estimate import estimate_power_w

N_CPUS = psutil.cpu_count(logical=True) or 1


def rapl_tree(root: Path) -> Path:
    for zone, name in {"intel-rapl:0": "package-0", "intel-rapl:0:0": "core"}.items():
        z = root / zone
        z.mkdir(parents=True)
        (z / "name").write_text(name + "\n")
        (z / "energy_uj").write_text("5000000\n")
        (z / "max_energy_range_uj").write_text("262143328850\n")
    return root


def test_busy_loop_measured_by_the_estimate():
    busy = "import time\nt = time.time()\nwhile time.time() - t < 0.6: pass\n"
    with select_meters(["estimate"], cpu_tdp_w=100) as sel:
        m = measure_command([sys.executable, "-c", busy], sel, period_s=0.01)
    assert m.returncode == 0
    assert m.elapsed_s >= 0.6
    assert m.energy_source == "estimate" and m.flag_estimate and m.meters == "estimate"
    # one of N_CPUS logical CPUs busy for most of the window (other load only adds):
    assert m.avg_power_w >= estimate_power_w(100, 0.7 / N_CPUS)
    assert m.avg_power_w <= 100.0 + 1e-9
    assert m.energy_j == pytest.approx(m.avg_power_w * m.elapsed_s)
    assert any("ESTIMATE" in w for w in m.warnings)
    assert m.samples is not None and m.samples.height >= 2
    assert m.domains[0]["domain"] == "cpu-package-0" and m.domains[0]["estimate"] is True


def test_rapl_stand_in_counts_exactly_what_the_command_consumed(tmp_path):
    """The child plays the hardware: it advances the package counter by 5 J (wrapping it) and the
    core by 2 J. Boundary reads right before start and after exit attribute exactly that."""
    cls = rapl_tree(tmp_path)
    (cls / "intel-rapl:0" / "max_energy_range_uj").write_text("8000000\n")  # 8 J range: 5 J + 5 J wraps
    child = (f"import pathlib\n"
             f"p = pathlib.Path({str(cls / 'intel-rapl:0' / 'energy_uj')!r})\n"
             f"p.write_text(str((int(p.read_text()) + 5_000_000) % 8_000_000) + '\\n')\n"
             f"c = pathlib.Path({str(cls / 'intel-rapl:0:0' / 'energy_uj')!r})\n"
             f"c.write_text(str(int(c.read_text()) + 2_000_000) + '\\n')\n")
    with select_meters(["rapl"], sysfs_root=cls) as sel:
        m = measure_command([sys.executable, "-c", child], sel, period_s=0.02)
    assert m.returncode == 0
    assert m.energy_source == "measured" and m.meters == "rapl"
    assert m.energy_j == pytest.approx(5.0)  # the core (inside the package) is not added
    per = {d["domain"]: d for d in m.domains}
    assert per["cpu-core-0"]["energy_j"] == pytest.approx(2.0)
    assert m.flag_estimate is False


def test_exit_code_is_returned_not_raised():
    with select_meters([]) as sel:
        m = measure_command([sys.executable, "-c", "import sys; sys.exit(3)"], sel)
    assert m.returncode == 3 and m.energy_source == "none" and m.energy_j is None


def test_unknown_command_is_a_usage_error():
    with select_meters([]) as sel, pytest.raises(UsageError, match="not found on PATH"):
        measure_command(["surely-not-a-command-xyz"], sel)
    with select_meters([]) as sel, pytest.raises(UsageError, match="no command"):
        measure_command([], sel)


def test_idle_baseline_gives_net_energy():
    with select_meters(["estimate"], cpu_tdp_w=40) as sel:
        m = measure_command([sys.executable, "-c", "pass"], sel, idle_s=0.2, period_s=0.01)
    assert m.idle_power_w is not None and 40 * 0.1 - 1e-9 <= m.idle_power_w <= 40 + 1e-9
    assert m.energy_net_j == pytest.approx(m.energy_j - m.idle_power_w * m.elapsed_s)
