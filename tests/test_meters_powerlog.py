"""PowerLog3.0 CSV import and attaching a log to a results directory.

The fixture ``data/powerlog_sample.csv`` is a PowerLog 3.x log in the real column format with the
summary footer: 3 s at 100 ms resolution, Processor 10 W until 1.5 s then 30 W, IA half of it,
DRAM 2 W, GT 0.2 W; first row at 12:00:00:000 local time.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from energybench.errors import ResultsError
from energybench.meters.powerlog import PowerLogError, attach_powerlog, powerlog_samples, read_powerlog, summary_check
from energybench.results import SAMPLES_SCHEMA, ResultsStore, read_runs, read_samples

DATA = Path(__file__).parent / "data" / "powerlog_sample.csv"
S = 1_000_000_000
T_LOG = 10_000 * S  # monotonic time of the log's first row in these tests
DAY = dt.date(2024, 5, 1)


def wall_ns(day: dt.date, h: int, m: int, s: float) -> int:
    start = dt.datetime.combine(day, dt.time(h, m, int(s), int(round((s % 1) * 1e6)))).astimezone()
    return int(start.timestamp()) * S + start.microsecond * 1000


OFFSET = wall_ns(DAY, 12, 0, 0.0) - T_LOG  # time.time_ns() - time.monotonic_ns() of that machine


def test_parse_domains_values_and_footer():
    log = read_powerlog(DATA)
    kinds = {d.name: (d.kind, d.parent, d.component) for d in log.domains}
    assert kinds["cpu-package-0"] == ("energy", None, "cpu")
    assert kinds["cpu-core-0"] == ("energy", "cpu-package-0", "cpu-core")
    assert kinds["gt-0"] == ("energy", "cpu-package-0", "uncore")
    assert kinds["dram-0"] == ("energy", None, "dram")
    assert kinds["cpu-package-0-power"] == ("power", "cpu-package-0", "cpu")
    assert "cpu-package-0-limit" not in kinds and not any("limit" in k for k in kinds)
    assert log.elapsed_s.size == 31 and log.duration_s == pytest.approx(3.0)
    assert log.first_time == dt.time(12, 0, 0)
    assert log.domains[0].update_period_s == pytest.approx(0.1)
    check = summary_check(log)
    assert check["cpu-package-0"] == {"last_row_j": 60.0, "footer_j": 60.0}
    assert check["dram-0"]["footer_j"] == pytest.approx(6.0)


def test_quoted_macos_style_log(tmp_path):
    # every cell quoted (as some PowerLog versions write), macOS naming "Package" for the processor
    text = DATA.read_text()
    body, _, footer = text.partition("\r\n\r\n")
    out = io.StringIO()
    w = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for row in csv.reader(io.StringIO(body)):
        w.writerow([c.replace("Processor", "Package") for c in row])
    for line in footer.splitlines():
        if line.strip():
            out.write(f'"{line.strip()}"\n')
    p = tmp_path / "mac.csv"
    p.write_text(out.getvalue())
    log = read_powerlog(p)
    assert "cpu-package-0" in {d.name for d in log.domains}
    assert np.nanmax(log.values["cpu-package-0"]) == pytest.approx(60.0)
    assert log.summary["Total Elapsed Time (sec)"] == pytest.approx(3.0)


def test_not_a_powerlog(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(PowerLogError, match="System Time"):
        read_powerlog(p)


def test_samples_on_our_monotonic_clock():
    df = powerlog_samples(read_powerlog(DATA), date=DAY, clock_offset_ns=OFFSET)
    assert df.schema == pl.Schema(SAMPLES_SCHEMA)
    pkg = df.filter(pl.col("domain") == "cpu-package-0").sort("t_ns")
    assert pkg["t_ns"][0] == T_LOG and pkg["t_ns"][-1] == T_LOG + 3 * S
    assert set(pkg["unit"]) == {"J"} and pkg["meter"][0] == "powerlog"
    assert set(df.filter(pl.col("domain") == "dram-0-power")["unit"]) == {"W"}


def _results_dir(tmp_path: Path, *, with_offset: bool = True) -> Path:
    """A results dir with one run inside the log (estimated CPU energy) and one outside it."""
    root = tmp_path / "res"
    store = ResultsStore(root)
    meta = {"clock_offset_ns": OFFSET} if with_offset else {}
    store.create(meta)
    est = {"domain": "cpu-package-0", "meter": "estimate", "kind": "energy", "component": "cpu", "parent": None,
           "estimate": True, "source": "ESTIMATE", "update_period_s": 0.01, "sample_period_s": 0.02,
           "n_samples": 3, "energy_j": 9.5, "energy_net_j": None, "prefill_energy_j": None, "decode_energy_j": None,
           "avg_power_w": 5.0, "peak_power_w": 5.0, "idle_power_w": None}
    started = dt.datetime.combine(DAY, dt.time(12, 0, 0, 550000)).astimezone().astimezone(dt.timezone.utc)
    for run_id, t0 in (("run-a", T_LOG + int(0.55 * S)), ("run-far", T_LOG + 100 * S)):
        t_mid, t1 = t0 + int(0.95 * S), t0 + int(1.9 * S)
        ts = np.arange(t0 - S // 10, t1 + S // 5, S // 10, dtype=np.int64)
        samples = pl.DataFrame({"run_id": run_id, "meter": "estimate", "domain": "cpu-package-0", "t_ns": ts,
                                "value": (ts - T_LOG) / S * 5.0, "unit": "J"})
        store.add_run({"run_id": run_id, "status": "ok", "started_at": started, "t_start_ns": t0,
                       "t_prefill_end_ns": t_mid, "t_end_ns": t1, "window_s": 1.9, "energy_source": "estimate",
                       "meters": "estimate", "energy_j": 9.5, "flag_estimate": True, "domains": [est]}, samples)
    idle_t = np.arange(T_LOG, T_LOG + int(0.45 * S), S // 20, dtype=np.int64)
    store.add_samples("idle-0", pl.DataFrame({"run_id": "idle-0", "meter": "estimate", "domain": "cpu-package-0",
                                              "t_ns": idle_t, "value": (idle_t - T_LOG) / S * 1.0, "unit": "J"}))
    return root


@pytest.mark.parametrize("date", [DAY, None], ids=["explicit-date", "date-from-runs"])
def test_attach_recomputes_covered_runs(tmp_path, date):
    root = _results_dir(tmp_path)
    assert attach_powerlog(root, DATA, date=date) == 1
    runs = {r["run_id"]: r for r in read_runs(root).iter_rows(named=True)}
    a = runs["run-a"]
    # package 10 W x 0.95 s + 30 W x 0.95 s = 38 J, DRAM 2 W x 1.9 s = 3.8 J; IA/GT are inside the
    # package and the estimate is dropped now that the CPU is measured
    assert a["energy_j"] == pytest.approx(41.8, rel=0.005)
    assert a["prefill_energy_j"] == pytest.approx(9.5 + 1.9, rel=0.005)
    assert a["decode_energy_j"] == pytest.approx(28.5 + 1.9, rel=0.005)
    assert a["energy_source"] == "measured" and a["meters"] == "powerlog" and a["flag_estimate"] is False
    # idle power from the log over the results' idle window: 10 W package + 2 W DRAM
    assert a["idle_power_w"] == pytest.approx(12.0, rel=0.005)
    assert a["energy_net_j"] == pytest.approx(41.8 - 12.0 * 1.9, rel=0.005)
    assert a["decode_energy_net_j"] == pytest.approx(30.4 - 12.0 * 0.95, rel=0.005)
    per = {(d["meter"], d["domain"]): d for d in a["domains"]}
    assert per[("powerlog", "cpu-core-0")]["energy_j"] == pytest.approx(19.0, rel=0.005)
    assert per[("powerlog", "cpu-package-0-power")]["energy_j"] == pytest.approx(38.0, rel=0.005)  # cross-check
    assert ("estimate", "cpu-package-0") in per  # still reported beside the measurement
    assert runs["run-far"]["energy_source"] == "estimate"  # outside the log: untouched
    samples = read_samples(root, ["run-a"])
    assert set(samples["meter"]) == {"estimate", "powerlog"}


def test_attach_twice_is_idempotent(tmp_path):
    root = _results_dir(tmp_path)
    attach_powerlog(root, DATA, date="2024-05-01")
    first = read_runs(root).filter(pl.col("run_id") == "run-a")["energy_j"][0]
    attach_powerlog(root, DATA, date="2024-05-01")
    runs = read_runs(root).filter(pl.col("run_id") == "run-a")
    assert runs["energy_j"][0] == pytest.approx(first)
    n_pl = read_samples(root, ["run-a"]).filter(pl.col("meter") == "powerlog").height
    assert n_pl == read_samples(root, ["run-a"]).filter(pl.col("meter") == "powerlog").unique(["domain", "t_ns"]).height


def test_attach_without_clock_offset_says_so(tmp_path):
    root = _results_dir(tmp_path, with_offset=False)
    with pytest.raises(ResultsError, match="clock_offset_ns"):
        attach_powerlog(root, DATA, date=DAY)
