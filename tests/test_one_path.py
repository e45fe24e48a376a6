"""One measurement path, one vocabulary: measure and sweep write the same results, every output
reads the same numbers, every engine event is handled by the live view, meters are always closed.

Real CLI subprocesses, real llama.cpp on the tiny twin, real Parquet and CSV; the meters are given
explicitly (the estimate with a TDP, or none), so the results do not depend on this host's meters.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest

from energybench import events as ev
from energybench.cli.live import LiveView
from energybench.results import read_metadata, read_runs

pytestmark = pytest.mark.slow

SMALL = ["-m", "synthetic:tiny", "-t", "1", "-p", "16", "-n", "6", "--idle", "0.2", "--cooldown", "0"]
METER = {"estimate": ["--meter", "estimate", "--cpu-tdp-w", "65"], "none": ["--meter", "none"]}
J_PER_TOKEN = ("j_per_output_token", "j_per_output_token_net", "j_per_processed_token", "j_per_processed_token_net")


@pytest.fixture(scope="module")
def dirs(tmp_path_factory, tiny_model) -> dict[str, Path]:
    """One measure and one sweep of the same point, with the estimate meter and with no meter."""
    from conftest import run_cli

    root = tmp_path_factory.mktemp("one-path")
    out: dict[str, Path] = {}
    for meter, flags in METER.items():
        m, s = root / f"measure-{meter}", root / f"sweep-{meter}"
        r = run_cli("measure", *SMALL, *flags, "-r", "4", "--warmup", "1", "--json", "-o", str(m))
        assert r.returncode == 0, r.stderr
        (root / f"measure-{meter}.json").write_text(r.stdout)
        r = run_cli("sweep", *SMALL, *flags, "-r", "4", "--warmup", "1", "--json", "-o", str(s))
        assert r.returncode == 0, r.stderr
        out[f"measure-{meter}"], out[f"sweep-{meter}"] = m, s
    return out


def test_measure_and_sweep_write_the_same_schema_and_metadata_keys(dirs):
    schemas = {name: read_runs(d).schema for name, d in dirs.items()}
    keys = {name: set(read_metadata(d)) for name, d in dirs.items()}
    first = next(iter(schemas.values()))
    assert all(s == first for s in schemas.values())
    assert all(k == keys["sweep-estimate"] for k in keys.values()), keys
    assert {"idle_baselines", "gpu_protocol", "meters", "domains", "config", "config_hash"} <= keys["measure-none"]
    assert read_metadata(dirs["measure-none"])["kind"] == "measure"
    assert read_metadata(dirs["sweep-none"])["kind"] == "sweep"
    # the same point, the same identity: measure is a one-point sweep
    assert read_runs(dirs["measure-estimate"])["point_id"].unique().to_list() == \
        read_runs(dirs["sweep-estimate"])["point_id"].unique().to_list()
    assert read_runs(dirs["measure-none"])["energy_source"].unique().to_list() == ["none"]


def test_every_output_gives_the_same_j_per_token(dirs, cli, tmp_path):
    d = dirs["measure-estimate"]
    measured = json.loads((d.parent / "measure-estimate.json").read_text())["metrics"]
    r = cli("report", str(d), "--format", "json", "--export", "csv", "--no-figures", "-o", str(tmp_path / "rep"))
    assert r.returncode == 0, r.stderr
    (conf,) = json.loads(r.stdout)["configurations"]
    table = pl.read_csv(tmp_path / "rep" / "tables" / "configurations.csv")
    runs = pl.read_csv(tmp_path / "rep" / "tables" / "runs.csv").filter((pl.col("status") == "ok")
                                                                      & ~pl.col("is_warmup"))
    for name in J_PER_TOKEN:
        value = measured[name]["median"]
        assert value is not None and value != 0, name  # net can be negative with a noisy estimate
        assert conf["metrics"][name]["median"] == pytest.approx(value, rel=1e-12), name
        assert table[name][0] == pytest.approx(value, rel=1e-12), name
        assert runs[name].median() == pytest.approx(value, rel=1e-12), name
    assert conf["n_reps"] == measured["j_per_output_token"]["n"] == 4


def test_the_live_view_handles_or_ignores_every_event():
    shown, ignored = set(LiveView.SHOWN), set(LiveView.IGNORED)
    assert not shown & ignored
    assert shown | ignored == set(ev.ALL_EVENTS)


def test_the_live_view_follows_a_run(tiny_model):
    from energybench.point import RunPoint

    view = LiveView(10, quiet=True)
    for e in (ev.Started(points=1, runs=10, already_done=0, out_dir="x", power_w=lambda: {"cpu": 3.0}),
              ev.PointStarted(index=0, point=RunPoint(model="synthetic:tiny")),
              ev.RunStarted(run_id="p-r000", warmup=False),
              ev.RunFinished(run_id="p-r000", ok=True, row={"flag_estimate": True},
                             metrics={"decode_tok_s": 20.0, "j_per_output_token": 0.5}),
              ev.RunFinished(run_id="p-r001", ok=False, row={"error": "SIGSEGV"}),
              ev.AdaptiveStopped(point_id="p", reps=1, ci_pct=2.0, runs_left_out=5)):
        view(e)
    assert view.progress.tasks[0].completed == 2 and view.progress.tasks[0].total == 5
    assert view.failures == 1 and view.last == "[failed] SIGSEGV"
    assert "enough repetitions after 1" in view.status and view.point.startswith("#1 synthetic:tiny")
    view(ev.RunFinished(run_id="p-r002", ok=True, row={"flag_estimate": True},
                        metrics={"decode_tok_s": 20.0, "j_per_output_token": 0.5}))
    assert view.last == "decode speed 20 tok/s · J/output token 0.5 J/tok (estimate)"


def _calls(log: Path) -> tuple[int, int]:
    lines = log.read_text().split() if log.exists() else []
    return lines.count("init"), lines.count("shutdown")


@pytest.mark.parametrize("case", ["success", "cpu-only refusal", "model that cannot load"])
def test_nvml_is_shut_down_on_every_path(tmp_path, cli, fake_nvml_dir, tiny_model, case):
    log = tmp_path / "nvml.log"
    env = {"LD_LIBRARY_PATH": str(fake_nvml_dir), "FAKE_NVML_CALL_LOG": str(log)}
    env.update({k: "" for k in os.environ if k.startswith("FAKE_NVML_") and k != "FAKE_NVML_CALL_LOG"})
    args = ["measure", "-m", "synthetic:tiny", "-t", "1", "-p", "8", "-n", "2", "-r", "1", "--warmup", "0",
            "--idle", "0", "--meter", "nvml", "-o", str(tmp_path / "out")]
    if case == "cpu-only refusal":
        args += ["-ngl", "1"]
    elif case == "model that cannot load":
        bad = tmp_path / "broken.gguf"
        bad.write_bytes(b"GGUF" + b"\0" * 60)
        args[2] = str(bad)
    r = cli(*args, env=env)
    assert r.returncode == {"success": 0, "cpu-only refusal": 2, "model that cannot load": 2}[case], r.stderr
    inits, shutdowns = _calls(log)
    assert inits >= 1 and inits == shutdowns, (inits, shutdowns, r.stderr)
