"""Reading the logs that meters write on their own, in the layouts the real tools write.

Fixtures (``data/logs``, written by ``fakes/logtools.py`` to each tool's rules; powers are stated,
not measured):

* ``powerlog_windows.csv``: Windows PowerLog, unquoted space-padded cells, `` CPU Utilization(%)``,
  CRLF, footer; first row 14:03:10:250, 100 ms, 2 s; Processor 12.5 W, IA 8 W, DRAM 1.5 W, GT 0.25 W.
* ``powerlog_macos.csv``: macOS PowerLog, quoted cells padded inside the quotes, LF rows, footer
  blank lines CRLF, footer says ``Package``; no GT or DRAM; Processor 6 W then 18 W from 1.5 s.
* ``powerlog_midnight_2pkg.csv``: Windows, packages _0 and _1, no GT, 250 ms from 23:59:58:750
  past midnight; constant 40/35 W packages, 25/20 W IA, 5/4 W DRAM.
* ``nvidia_smi_two_gpus.csv``: two GPUs interleaved (index 0: power.draw 60 W with two ``[N/A]``,
  instant 62 W; index 1: power.draw 30.32 W, instant ``[Not Supported]``), 100 ms, 2 s.
* ``nvidia_smi_blocks.csv``: ``--format=csv,nounits``, columns ``index, power.draw.average,
  timestamp``, one block per GPU (45.5 W and 21.25 W), 1 s.
* ``wall_iso.csv``: ``Time,Active Power (W),Power Factor``, naive ISO local time, 1 s, 95 W.
* ``wall_epoch_ms.csv``: a title line, ``ts;Power (mW)``, epoch milliseconds, 0.5 s, 88 W.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from energybench.attach import LogFormatError, check_logs, read_log
from energybench.attach.formats import detect

LOGS = Path(__file__).parent / "data" / "logs"
POWERLOGS = ["powerlog_windows.csv", "powerlog_macos.csv", "powerlog_midnight_2pkg.csv"]


def traces(log):
    return {t.domain.name: t for t in log.traces}


def test_windows_powerlog_layout_and_domains():
    raw = (LOGS / "powerlog_windows.csv").read_bytes()
    assert b"\r\n" in raw and b', CPU Utilization(%)' in raw and b'"' not in raw  # the layout under test
    log = read_log(LOGS / "powerlog_windows.csv")
    assert (log.format, log.meter, log.dated, log.n_rows) == ("powerlog", "powerlog", False, 20)
    assert log.anchor.time() == dt.time(14, 3, 10, 250000)
    t = traces(log)
    kinds = {n: (x.domain.kind, x.domain.component, x.domain.parent) for n, x in t.items()}
    assert kinds["cpu-package-0"] == ("energy", "cpu", None)
    assert kinds["cpu-core-0"] == ("energy", "cpu-core", "cpu-package-0")
    assert kinds["gt-0"] == ("energy", "uncore", "cpu-package-0")
    assert kinds["dram-0"] == ("energy", "dram", None)
    assert kinds["cpu-package-0-power"] == ("power", "cpu", "cpu-package-0")
    assert not any("limit" in n for n in t)
    pkg = t["cpu-package-0"]
    # logging started one resolution before the first row: the counter starts there at 0 J
    assert pkg.offset_ns[0] == -100_000_000 and pkg.value[0] == 0.0 and pkg.n == 21
    assert pkg.domain.update_period_s == pytest.approx(0.1)
    # a power cell is the average of the interval ending at its row: placed at its midpoint
    assert t["cpu-package-0-power"].offset_ns[0] == -50_000_000
    assert log.footer_j == pytest.approx({"cpu-package-0": 25.0, "cpu-core-0": 16.0, "dram-0": 3.0, "gt-0": 0.5})
    assert log.footer_s == pytest.approx(2.0)


def test_macos_powerlog_quoted_padding_crlf_footer_and_package_naming():
    raw = (LOGS / "powerlog_macos.csv").read_bytes()
    assert b'"    0.100"' in raw and b"\n\r\n" in raw and b'"Cumulative Package Energy_0 (Joules)' in raw
    assert b"Processor Power_0" in raw and b"DRAM" not in raw and b"GT " not in raw
    log = read_log(LOGS / "powerlog_macos.csv")
    t = traces(log)
    assert set(t) == {"cpu-package-0", "cpu-core-0", "cpu-package-0-power", "cpu-core-0-power"}
    # the footer's "Package" is the header's "Processor": the same domain
    assert log.footer_j == pytest.approx({"cpu-package-0": 36.0, "cpu-core-0": 18.0})
    pkg = t["cpu-package-0"]
    assert pkg.integral_j() == pytest.approx(6.0 * 1.5 + 18.0 * 1.5)
    power = t["cpu-package-0-power"]
    assert set(np.round(power.value, 6)) == {6.0, 18.0}


def test_powerlog_past_midnight_two_packages():
    log = read_log(LOGS / "powerlog_midnight_2pkg.csv")
    t = traces(log)
    assert {"cpu-package-0", "cpu-package-1", "cpu-core-1", "dram-1"} <= set(t)
    assert t["cpu-core-1"].domain.parent == "cpu-package-1"
    off = t["cpu-package-1"].offset_ns
    assert np.all(np.diff(off) == 250_000_000) and off[-1] == 2_750_000_000
    assert log.footer_j["cpu-package-1"] == pytest.approx(105.0)


def test_powerlog_without_elapsed_column_unwraps_midnight(tmp_path):
    # a log reduced to System Time: offsets come from the time of day, across midnight
    lines = (LOGS / "powerlog_midnight_2pkg.csv").read_text().splitlines()
    header = lines[0].split(",")
    k = header.index("Elapsed Time (sec)")
    body = [",".join(c for i, c in enumerate(line.split(",")) if i != k) if "," in line else line for line in lines]
    p = tmp_path / "no_elapsed.csv"
    p.write_text("\r\n".join(body) + "\r\n")
    log = read_log(p)
    off = traces(log)["cpu-package-0"].offset_ns
    assert off[0] == 0 and off[-1] == 2_750_000_000  # no origin sample without Elapsed Time
    assert np.all(np.diff(off) == 250_000_000)


def test_nvidia_smi_two_gpus_na_and_not_supported():
    log = read_log(LOGS / "nvidia_smi_two_gpus.csv")
    assert (log.format, log.dated, log.n_rows) == ("nvidia-smi", True, 42)
    assert log.anchor == dt.datetime(2025, 6, 9, 23, 14, 25, 5000)
    t = traces(log)
    assert set(t) == {"gpu-0", "gpu-0-draw", "gpu-1"}
    assert "power.draw.instant" in t["gpu-0"].domain.source and "RTX 4090" in t["gpu-0"].domain.source
    assert t["gpu-0-draw"].domain.parent == "gpu-0" and t["gpu-0-draw"].n == 19  # two [N/A] left out
    assert t["gpu-1"].domain.parent is None and "power.draw (" in t["gpu-1"].domain.source  # instant unsupported
    assert t["gpu-1"].offset_ns[0] == 2_000_000  # GPU 1's rows come 2 ms after GPU 0's
    assert t["gpu-0"].integral_j() == pytest.approx(62.0 * 2.0, rel=0.005)
    assert t["gpu-1"].integral_j() == pytest.approx(30.32 * 2.0, rel=0.005)
    assert t["gpu-0"].domain.update_period_s == pytest.approx(0.1)
    assert t["gpu-0-draw"].domain.update_period_s == pytest.approx(1.0)


def test_nvidia_smi_blocks_any_column_order_nounits():
    log = read_log(LOGS / "nvidia_smi_blocks.csv")
    t = traces(log)
    assert set(t) == {"gpu-0", "gpu-1"}
    assert "power.draw.average" in t["gpu-0"].domain.source
    assert t["gpu-0"].integral_j() == pytest.approx(45.5, rel=0.005)
    assert t["gpu-1"].integral_j() == pytest.approx(21.25, rel=0.005)


def test_wall_csv_iso_picks_active_power_not_power_factor():
    log = read_log(LOGS / "wall_iso.csv")
    (tr,) = log.traces
    d = tr.domain
    assert (d.name, d.component, d.kind, d.meter, d.parent) == ("wall", "system", "power", "wall-csv", None)
    assert "'Active Power (W)'" in d.source and set(tr.value) == {95.0}
    assert log.anchor == dt.datetime(2025, 6, 9, 23, 14, 20) and log.anchor.tzinfo is None  # local time
    assert tr.integral_j() == pytest.approx(95.0 * 15, rel=0.005)


def test_wall_csv_epoch_ms_milliwatts_semicolons_title_line():
    log = read_log(LOGS / "wall_epoch_ms.csv")
    (tr,) = log.traces
    assert set(tr.value) == {88.0}  # mW -> W
    assert log.anchor == dt.datetime(2025, 6, 9, 21, 14, 20, tzinfo=dt.UTC)  # epoch: absolute
    assert tr.domain.update_period_s == pytest.approx(0.5)
    assert tr.integral_j() == pytest.approx(880.0, rel=0.005)


def test_wall_csv_columns_by_name_and_unknown_unit(tmp_path):
    p = tmp_path / "plug.csv"
    p.write_text("when,reading,temp\n1749503660,120.5,40\n1749503661.5,121.5,40\n1749503663,120.0,41\n")
    with pytest.raises(LogFormatError, match="no time column"):
        read_log(p)
    log = read_log(p, "csv", time_column="when", power_column="reading")
    (tr,) = log.traces
    assert tr.offset_ns.tolist() == [0, 1_500_000_000, 3_000_000_000]  # epoch seconds
    assert "no unit: read as W" in tr.domain.source


@pytest.mark.parametrize("name, fmt", [
    ("powerlog_windows.csv", "powerlog"), ("powerlog_macos.csv", "powerlog"), ("nvidia_smi_two_gpus.csv", "nvidia-smi"),
    ("nvidia_smi_blocks.csv", "nvidia-smi"), ("wall_iso.csv", "csv"), ("wall_epoch_ms.csv", "csv")])
def test_auto_detection(name, fmt):
    assert detect(LOGS / name) == fmt


@pytest.mark.parametrize("name", POWERLOGS)
def test_check_agrees_with_every_powerlog_footer(name):
    (rep,) = check_logs([LOGS / name])
    counters = [d for d in rep["domains"] if d["kind"] == "energy"]
    assert counters and all(d["footer_j"] is not None for d in counters)
    for d in counters:
        assert abs(d["diff_pct"]) <= 0.5 and d["agrees"], d


@pytest.mark.parametrize("name, domain, watts", [
    ("powerlog_windows.csv", "cpu-package-0", 12.5), ("powerlog_windows.csv", "dram-0", 1.5),
    ("powerlog_midnight_2pkg.csv", "cpu-package-1", 35.0), ("nvidia_smi_two_gpus.csv", "gpu-0", 62.0),
    ("nvidia_smi_blocks.csv", "gpu-1", 21.25), ("wall_iso.csv", "wall", 95.0), ("wall_epoch_ms.csv", "wall", 88.0)])
def test_constant_power_integrates_exactly(name, domain, watts):
    (rep,) = check_logs([LOGS / name])
    d = next(x for x in rep["domains"] if x["domain"] == domain)
    assert d["energy_j"] == pytest.approx(watts * d["duration_s"], rel=0.005)


def _cut_last_line(src: Path, dst: Path, keep_fields: int) -> int:
    """``dst``: ``src`` whose last sample row stops after ``keep_fields`` fields; returns its line number."""
    lines = src.read_bytes().decode().splitlines(keepends=True)
    k = max(i for i, line in enumerate(lines) if line[:1].isdigit() or line.startswith('"0') or line.startswith('"1'))
    lines[k] = ",".join(lines[k].split(",")[:keep_fields])
    dst.write_text("".join(lines[:k + 1]), newline="")
    return k + 1


@pytest.mark.parametrize("name", ["powerlog_windows.csv", "powerlog_macos.csv", "nvidia_smi_two_gpus.csv"])
def test_truncated_log_names_file_and_line(tmp_path, name):
    p = tmp_path / name
    line = _cut_last_line(LOGS / name, p, 3)
    with pytest.raises(LogFormatError) as exc:
        read_log(p)
    assert exc.value.line == line and "truncated row" in exc.value.problem and exc.value.exit_code == 2
    assert str(exc.value).startswith(f"{p}:{line}: ")


def test_malformed_cells_name_line_and_column(tmp_path):
    p = tmp_path / "bad.csv"
    lines = (LOGS / "powerlog_windows.csv").read_text().splitlines()
    lines[5] = lines[5].replace(" 12.500000", " 12.5O0000", 1)
    p.write_text("\r\n".join(lines))
    with pytest.raises(LogFormatError, match=r"bad\.csv:6: 'Processor Power_0\(Watt\)' is '12\.5O0000'"):
        read_log(p)
    q = tmp_path / "smi.csv"
    text = (LOGS / "nvidia_smi_two_gpus.csv").read_text().replace("2025/06/09 23:14:25.305", "09.06.2025 23:14:25", 1)
    q.write_text(text)
    with pytest.raises(LogFormatError, match=r"smi\.csv:8: timestamp '09\.06\.2025 23:14:25'"):
        read_log(q)


def test_check_cli_json_and_errors(cli, tmp_path):
    r = cli("attach", "--check", str(LOGS / "powerlog_windows.csv"), str(LOGS / "nvidia_smi_two_gpus.csv"), "--json")
    assert r.returncode == 0, r.stderr
    reps = json.loads(r.stdout)
    assert [x["format"] for x in reps] == ["powerlog", "nvidia-smi"]
    pkg = next(d for d in reps[0]["domains"] if d["domain"] == "cpu-package-0")
    assert pkg["footer_j"] == pytest.approx(25.0) and abs(pkg["diff_pct"]) < 0.5
    text = cli("attach", "--check", str(LOGS / "powerlog_macos.csv"))
    assert text.returncode == 0 and "cpu-package-0" in text.stdout and "diff %" in text.stdout
    bad = tmp_path / "cut.csv"
    line = _cut_last_line(LOGS / "powerlog_macos.csv", bad, 2)
    r = cli("attach", "--check", str(bad))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and f"cut.csv:{line}: truncated row" in r.stderr
