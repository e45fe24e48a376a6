"""Attaching logs to results: alignment by wall clock, per-run and per-phase attribution, idle power,
idempotence, clear errors, and nothing lost when writing fails.

Results directories here are written through the real store, their live domain (the estimate meter's
counter at 5 W) attributed by the real :func:`attribute_run`, as a measurement does; their
``clock_offset_ns`` puts the fixtures' wall-clock times (``data/logs``, see test_attach_formats.py)
at known monotonic times. Local time is this process's time zone, as for the tools that wrote them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from energybench.attach import attach_logs
from energybench.attach.align import epoch_ns
from energybench.energy import attribute_run
from energybench.errors import ResultsError, UsageError
from energybench.gpu_protocol import GpuProtocol
from energybench.meters.base import Domain
from energybench.results import ResultsStore, read_metadata, read_runs, read_samples

LOGS = Path(__file__).parent / "data" / "logs"
S = 1_000_000_000
T = 1_000 * S  # monotonic time of each log's anchor in these tests
DAY = dt.date(2025, 6, 9)
EST = Domain(name="cpu-package-0", kind="energy", meter="estimate", component="cpu", source="ESTIMATE (test)",
             update_period_s=0.01, estimate=True)


def offset_for(anchor: dt.datetime) -> int:
    """clock_offset_ns that puts ``anchor`` (naive: local time) at monotonic ``T``."""
    return epoch_ns(anchor) - T


def make_results(root: Path, offset: int, runs: list[tuple[str, float, float, float]], *,
                 idle: list[tuple[str, float, float]] = (), n_gpu_layers: int = 0, protocol: bool = False,
                 consolidate: bool = True) -> Path:
    """Runs (id, start, prefill end, end: seconds after T) measured by a live 5 W estimate meter."""
    store = ResultsStore(root)
    meta = {"clock_offset_ns": offset, "domains": [EST.to_dict()],
            "meters": [{"name": "estimate", "description": "ESTIMATE", "estimate": True}],
            "idle_baselines": [{"name": n, "t_start_ns": T + int(a * S), "t_end_ns": T + int(b * S),
                                "power_w": {"cpu-package-0": 5.0}} for n, a, b in idle],
            "gpu_protocol": GpuProtocol().metadata() if protocol else None}
    store.create(meta)
    for run_id, a, p, b in runs:
        t0, tp, t1 = (T + int(x * S) for x in (a, p, b))
        ts = np.arange(t0 - S // 50, t1 + S // 25, S // 50, dtype=np.int64)
        samples = pl.DataFrame({"run_id": run_id, "meter": "estimate", "domain": EST.name, "t_ns": ts,
                                "value": (ts - T) / S * 5.0, "unit": "J"})
        cols = attribute_run([EST], samples, t_start_ns=t0, t_end_ns=t1, t_prefill_end_ns=tp,
                             idle_power_w={"cpu-package-0": 5.0}).columns
        store.add_run({"run_id": run_id, "status": "ok", "t_start_ns": t0, "t_prefill_end_ns": tp, "t_end_ns": t1,
                       "window_s": (t1 - t0) / S, "n_gpu_layers": n_gpu_layers, **cols}, samples)
    for n, a, b in idle:
        ts = np.arange(T + int(a * S), T + int(b * S) + 1, S // 50, dtype=np.int64)
        store.add_samples(n, pl.DataFrame({"run_id": n, "meter": "estimate", "domain": EST.name, "t_ns": ts,
                                           "value": (ts - T) / S * 5.0, "unit": "J"}))
    if consolidate:
        store.consolidate()
    return root


def domains_of(root: Path, run_id: str) -> dict[tuple[str, str], dict]:
    row = read_runs(root).filter(pl.col("run_id") == run_id).row(0, named=True)
    return {(d["meter"], d["domain"]): d for d in row["domains"]}


def run_row(root: Path, run_id: str) -> dict:
    return read_runs(root).filter(pl.col("run_id") == run_id).row(0, named=True)


def files_digest(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def windows_results(tmp_path):
    """Runs inside powerlog_windows.csv (first row 14:03:10.250 = T) and one an hour later."""
    offset = offset_for(dt.datetime(2025, 6, 9, 14, 3, 10, 250000))
    return make_results(tmp_path / "res", offset, [("run-a", 0.3, 0.8, 1.5), ("run-late", 3600.0, 3600.2, 3600.5)],
                        idle=[("idle-0", -0.05, 0.25)])


def test_powerlog_attributes_each_phase_and_keeps_the_live_domain(windows_results):
    root = windows_results
    before = domains_of(root, "run-a")[("estimate", "cpu-package-0")]
    res = attach_logs(root, [LOGS / "powerlog_windows.csv"])
    assert (res.runs_ok, res.runs_updated) == (2, 1)
    assert res.logs[0]["date"] == "2025-06-09" and res.logs[0]["date_source"] == "inferred"
    assert any("1 of 2 runs lie outside every log" in w for w in res.warnings)
    a = run_row(root, "run-a")
    # package 12.5 W + DRAM 1.5 W (IA and GT are inside the package; the estimate is replaced as total)
    assert a["energy_j"] == pytest.approx(14.0 * 1.2, rel=0.005)
    assert a["prefill_energy_j"] == pytest.approx(14.0 * 0.5, rel=0.005)
    assert a["decode_energy_j"] == pytest.approx(14.0 * 0.7, rel=0.005)
    assert (a["energy_source"], a["meters"], a["flag_estimate"]) == ("measured", "powerlog", False)
    assert a["idle_power_w"] == pytest.approx(14.0, rel=0.005)  # from the log over idle-0's window
    assert a["energy_net_j"] == pytest.approx(0.0, abs=0.05)
    per = domains_of(root, "run-a")
    assert per[("powerlog", "cpu-core-0")]["decode_energy_j"] == pytest.approx(8.0 * 0.7, rel=0.005)
    assert per[("powerlog", "gt-0")]["parent"] == "cpu-package-0"
    assert per[("estimate", "cpu-package-0")] == before  # the live domain, attributed again, unchanged
    late = run_row(root, "run-late")
    assert late["meters"] == "estimate" and len(late["domains"]) == 1  # outside the log: untouched
    stored = read_samples(root, ["run-a", "idle-0"])
    assert set(stored.filter(pl.col("run_id") == "run-a")["meter"]) == {"estimate", "powerlog"}
    assert stored.filter((pl.col("run_id") == "idle-0") & (pl.col("meter") == "powerlog")).height > 0
    meta = read_metadata(root)
    assert {"powerlog", "estimate"} == {m["name"] for m in meta["meters"]}
    assert {("powerlog", "dram-0"), ("estimate", "cpu-package-0")} <= {(d["meter"], d["name"]) for d in meta["domains"]}
    (rec,) = meta["attached"]
    assert rec["file"] == "powerlog_windows.csv" and len(rec["sha256"]) == 64 and rec["runs"] == 1
    assert rec["first"].startswith("2025-06-09 14:03:10.150")  # the logging origin, one row before
    assert meta["idle_baselines"][0]["attached_power_w"]["powerlog/cpu-package-0"] == pytest.approx(12.5)
    assert meta["idle_baselines"][0]["power_w"] == {"cpu-package-0": 5.0}  # the live baseline as measured


def test_attaching_twice_changes_nothing(windows_results):
    root = windows_results
    attach_logs(root, [LOGS / "powerlog_windows.csv"])
    runs1, samples1 = read_runs(root), read_samples(root).sort(["run_id", "meter", "domain", "t_ns"])
    attach_logs(root, [LOGS / "powerlog_windows.csv"], date="2025-06-09")
    assert_frame_equal(read_runs(root), runs1)
    assert_frame_equal(read_samples(root).sort(["run_id", "meter", "domain", "t_ns"]), samples1)
    assert len(read_metadata(root)["attached"]) == 1


def test_a_log_overlapping_no_run_is_one_clear_error(windows_results):
    before = files_digest(windows_results)
    with pytest.raises(UsageError) as exc:
        attach_logs(windows_results, [LOGS / "nvidia_smi_two_gpus.csv"])
    msg = exc.value.one_line()
    assert "nvidia_smi_two_gpus.csv overlaps no run" in msg
    assert "2025-06-09 23:14:25.005" in msg and "2025-06-09 14:03:10.550" in msg  # both ranges
    with pytest.raises(UsageError, match=r"covers 2025-06-14 14:03:10\.150\S* \.\. 2025-06-14 14:03:12\.150") as exc2:
        attach_logs(windows_results, [LOGS / "powerlog_windows.csv"], date="2025-06-14")
    assert exc2.value.exit_code == 2 and "leave it out to infer it" in exc2.value.one_line()
    with pytest.raises(UsageError, match=r"covers 23:59:58\.500 \.\. 00:00:01\.500 local time on any day from "
                                         r"2025-06-08 to 2025-06-10, the runs 2025-06-09 14:03:10\.550"):
        attach_logs(windows_results, [LOGS / "powerlog_midnight_2pkg.csv"])
    with pytest.raises(UsageError, match="not YYYY-MM-DD"):
        attach_logs(windows_results, [LOGS / "powerlog_windows.csv"], date="9/6/2025")
    assert files_digest(windows_results) == before


def test_failure_while_writing_loses_nothing(windows_results, monkeypatch):
    before = files_digest(windows_results)
    real = pl.DataFrame.write_parquet
    calls = []

    def disk_full(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the runs file, after the samples file was staged
            raise OSError(28, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pl.DataFrame, "write_parquet", disk_full)
    with pytest.raises(OSError, match="No space left"):
        attach_logs(windows_results, [LOGS / "powerlog_windows.csv"])
    assert files_digest(windows_results) == before  # no temp file left, nothing replaced


def test_midnight_rollover_date_inferred_from_runs_after_midnight(tmp_path):
    # first row 23:59:58.750 on DAY; the run is at 00:00:00.25-00:00:01.25 of the next day
    offset = offset_for(dt.datetime(2025, 6, 9, 23, 59, 58, 750000))
    root = make_results(tmp_path / "res", offset, [("run-a", 1.5, 1.9, 2.5)])
    res = attach_logs(root, [LOGS / "powerlog_midnight_2pkg.csv"])
    assert res.logs[0]["date"] == "2025-06-09" and res.logs[0]["date_source"] == "inferred"
    a = run_row(root, "run-a")
    assert a["energy_j"] == pytest.approx((40 + 35 + 5 + 4) * 1.0, rel=0.005)  # two packages + two DRAMs
    assert {"cpu-package-1", "dram-1"} <= {d for (_, d) in domains_of(root, "run-a")}


def test_wall_meter_is_the_total_with_gpus_and_cpu_beside(tmp_path):
    offset = offset_for(dt.datetime(2025, 6, 9, 23, 14, 25, 5000))
    root = make_results(tmp_path / "res", offset, [("run-a", 0.5, 0.9, 1.5)])
    res = attach_logs(root, [LOGS / "nvidia_smi_two_gpus.csv", LOGS / "wall_iso.csv"])
    assert res.run_totals == {"wall-csv": 1}
    a = run_row(root, "run-a")
    assert a["energy_j"] == pytest.approx(95.0, rel=0.005)  # the wall alone: it contains everything
    assert a["prefill_energy_j"] == pytest.approx(95.0 * 0.4, rel=0.005)
    per = domains_of(root, "run-a")
    assert per[("nvidia-smi", "gpu-0")]["energy_j"] == pytest.approx(62.0, rel=0.005)
    assert per[("nvidia-smi", "gpu-1")]["decode_energy_j"] == pytest.approx(30.32 * 0.6, rel=0.005)
    assert per[("wall-csv", "wall")]["component"] == "system"
    assert per[("estimate", "cpu-package-0")]["energy_j"] == pytest.approx(5.0, rel=0.005)  # reported beside


def test_idle_power_from_the_baseline_before_each_run(tmp_path):
    # macOS log: package 6 W until 1.5 s after its origin, then 18 W (first row 09:30:00.100 = T)
    offset = offset_for(dt.datetime(2025, 6, 9, 9, 30, 0, 100000))
    root = make_results(tmp_path / "res", offset, [("run-a", 0.6, 0.8, 1.1), ("run-b", 2.4, 2.5, 2.8)],
                        idle=[("idle-0", 0.1, 0.5), ("idle-1", 1.9, 2.3)])
    res = attach_logs(root, [LOGS / "powerlog_macos.csv"], date=DAY)
    assert res.idle_power_w["idle-0"]["powerlog/cpu-package-0"] == pytest.approx(6.0, rel=0.005)
    assert res.idle_power_w["idle-1"]["powerlog/cpu-package-0"] == pytest.approx(18.0, rel=0.005)
    assert run_row(root, "run-a")["idle_power_w"] == pytest.approx(6.0, rel=0.005)
    assert run_row(root, "run-b")["idle_power_w"] == pytest.approx(18.0, rel=0.005)


def test_gpu_protocol_applies_to_attached_gpu_power_as_live(tmp_path):
    offset = offset_for(dt.datetime(2025, 6, 9, 23, 14, 25, 5000))
    gpu = make_results(tmp_path / "gpu", offset, [("run-a", 0.3, 0.5, 1.6)], n_gpu_layers=-1, protocol=True)
    cpu = make_results(tmp_path / "cpu", offset, [("run-a", 0.3, 0.5, 1.6)], n_gpu_layers=0, protocol=True)
    for root in (gpu, cpu):
        attach_logs(root, [LOGS / "nvidia_smi_two_gpus.csv"])
    on = domains_of(gpu, "run-a")[("nvidia-smi", "gpu-0")]
    off = domains_of(cpu, "run-a")[("nvidia-smi", "gpu-0")]
    assert "rise time" in on["source"] and "rise time" not in off["source"]
    assert on["energy_j"] == pytest.approx(62.0 * 1.3, rel=0.005)  # constant power: the same energy


def test_unconsolidated_results_are_merged(tmp_path):
    offset = offset_for(dt.datetime(2025, 6, 9, 14, 3, 10, 250000))
    root = make_results(tmp_path / "res", offset, [("run-a", 0.3, 0.8, 1.5), ("run-b", 1.6, 1.7, 1.8)],
                        consolidate=False)
    assert not (root / "runs.parquet").exists()
    attach_logs(root, [LOGS / "powerlog_windows.csv"])
    assert (root / "runs.parquet").exists() and not list((root / "parts").glob("*.parquet"))
    assert set(read_runs(root)["meters"]) == {"powerlog"}


def test_refusals(tmp_path, windows_results):
    with pytest.raises(UsageError, match="both give powerlog cpu-package-0"):
        attach_logs(windows_results, [LOGS / "powerlog_windows.csv", LOGS / "powerlog_windows.csv"])
    store = ResultsStore(tmp_path / "old")
    store.create({"domains": []})
    store.add_run({"run_id": "r", "status": "ok", "t_start_ns": 1, "t_end_ns": 2})
    with pytest.raises(ResultsError, match="clock_offset_ns"):
        attach_logs(tmp_path / "old", [LOGS / "wall_iso.csv"])
    with pytest.raises(ResultsError, match="does not exist"):
        attach_logs(tmp_path / "missing", [LOGS / "wall_iso.csv"])


def test_cli_attach_uses_the_local_time_zone(cli, tmp_path):
    # wall_epoch_ms.csv is absolute (21:14:20Z); nvidia_smi_two_gpus.csv is naive (23:14:25 local): both
    # fall on the run only where local time is UTC+2 in June
    from zoneinfo import ZoneInfo

    anchor = dt.datetime(2025, 6, 9, 23, 14, 25, 5000, tzinfo=ZoneInfo("Europe/Berlin"))
    root = make_results(tmp_path / "res", epoch_ns(anchor) - T, [("run-a", 0.5, 0.9, 1.5)])
    logs = [str(LOGS / "wall_epoch_ms.csv"), str(LOGS / "nvidia_smi_two_gpus.csv")]
    r = cli("attach", str(root), *logs, env={"TZ": "UTC"})
    assert r.returncode == 2 and "nvidia_smi_two_gpus.csv overlaps no run" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = cli("attach", str(root), *logs, "--json", env={"TZ": "Europe/Berlin"})
    assert r.returncode == 0, r.stderr
    a = run_row(root, "run-a")
    assert a["meters"] == "wall-csv" and a["energy_j"] == pytest.approx(88.0, rel=0.005)
    text = cli("attach", str(root), *logs, env={"TZ": "Europe/Berlin"})
    assert "runs re-attributed: 1 of 1" in text.stdout and "wall-csv (1 runs)" in text.stdout
