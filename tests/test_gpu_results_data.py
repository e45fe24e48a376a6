"""The recorded CUDA results directory ``tests/data/results_cuda/`` (SYNTHETIC test data, see its
``generate.py``): what a CUDA sweep writes, read back through the engine-side paths -- results
readers, backend_mode, GPU domains next to the CPU, GPU-protocol provenance, re-attribution from
the stored samples, and the stored config reproducing the plan."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from energybench.config import config_hash, parse_config
from energybench.energy import attribute_run, domain_from_struct
from energybench.gpu_protocol import GpuProtocol, gap_s
from energybench.models.shapes import SHAPES
from energybench.results import read_metadata, read_runs, read_samples
from energybench.engine.session import backend_mode
from energybench.plan import plan_from_config

DATA = Path(__file__).parent / "data" / "results_cuda"


@pytest.fixture(scope="module")
def runs() -> pl.DataFrame:
    return read_runs(DATA)


@pytest.fixture(scope="module")
def meta() -> dict:
    return read_metadata(DATA)


def n_layer_of(meta: dict) -> int:
    (model,) = meta["models"].values()
    shape = model["shape"]
    return SHAPES[shape].n_layer


def test_it_is_small_labelled_and_complete(runs, meta):
    assert sum(p.stat().st_size for p in DATA.iterdir() if p.is_file()) < 200 * 1024
    assert "SYNTHETIC TEST DATA" in meta["note"]
    assert meta["status"] == "finished" and runs.height > 0
    assert runs["status"].to_list() == ["ok"] * runs.height
    assert runs["model_synthetic"].all()


def test_backend_mode_matches_the_offload_request(runs, meta):
    n_layer = n_layer_of(meta)
    assert n_layer == 2
    modes = dict(runs.select("n_gpu_layers", "backend_mode").unique().iter_rows())
    assert modes == {0: "cpu", 1: "cuda-partial", 2: "cuda-partial", 3: "cuda-full"}
    for ngl, mode in modes.items():
        assert backend_mode(ngl, n_layer, meta["backend"]["supports_gpu_offload"], meta["backend"]["devices"]) == mode


def test_gpu_domain_next_to_the_cpu_and_totals(runs):
    for row in runs.iter_rows(named=True):
        doms = {d["domain"]: d for d in row["domains"]}
        gpu = doms["gpu-0"]
        assert (gpu["meter"], gpu["component"], gpu["kind"], gpu["parent"]) == ("nvml", "gpu", "energy", None)
        assert "nvmlDeviceGetTotalEnergyConsumption" in gpu["source"] and "Yang et al" in gpu["source"]
        cpu = [d for d in row["domains"] if d["component"] == "cpu" and d["parent"] is None]
        assert len(cpu) == 1 and cpu[0]["estimate"]  # no RAPL where it was recorded: a labelled estimate
        assert row["energy_j"] == pytest.approx(gpu["energy_j"] + cpu[0]["energy_j"], rel=1e-9)
        assert row["prefill_energy_j"] + row["decode_energy_j"] == pytest.approx(row["energy_j"], rel=1e-9)
        assert row["meters"] == "nvml,estimate" and row["energy_source"] == "estimate" and row["flag_estimate"]


def test_protocol_provenance(runs, meta):
    proto = meta["gpu_protocol"]
    p = GpuProtocol.from_settings(proto)
    gpu_runs = runs.filter(pl.col("n_gpu_layers") != 0)
    cpu_runs = runs.filter(pl.col("n_gpu_layers") == 0)
    assert set(proto["points"]) == set(gpu_runs["point_id"].to_list())
    assert set(proto["gaps_s"]) == set(gpu_runs["run_id"].to_list())
    for run_id, g in proto["gaps_s"].items():
        assert g == p.gap_s(run_id) == gap_s(proto["seed"], run_id, tuple(proto["random_gap_s"]))
    measured = gpu_runs.filter(~pl.col("is_warmup")).group_by("point_id").len()["len"].to_list()
    assert measured and min(measured) >= p.min_trials
    assert (gpu_runs["window_s"] >= p.min_window_s).all()
    cfg_min_window = meta["config"]["min_window_s"]
    assert cfg_min_window < p.min_window_s and (cpu_runs["window_s"] >= cfg_min_window).all()
    assert cpu_runs.filter(~pl.col("is_warmup")).height == meta["config"]["repetitions"]["fixed"]


def test_stored_config_reproduces_the_plan_and_its_hash(runs, meta):
    config = parse_config(meta["config"], source="metadata.json")
    assert config_hash(config) == meta["config_hash"]
    plan = plan_from_config(config)
    assert {p.point_id for p in plan.points} == set(runs["point_id"].to_list())
    assert plan.runs_total() == runs.height


def test_energies_reattribute_from_the_stored_samples(runs, meta):
    idle = meta["idle_baselines"][0]["power_w"]
    proto = GpuProtocol.from_settings(meta["gpu_protocol"])
    samples = read_samples(DATA)
    for row in runs.iter_rows(named=True):
        domains = [domain_from_struct(d) for d in row["domains"]]
        rise = proto.rise_by_domain(domains) if row["n_gpu_layers"] != 0 else None
        again = attribute_run(domains, samples.filter(pl.col("run_id") == row["run_id"]),
                              t_start_ns=row["t_start_ns"], t_end_ns=row["t_end_ns"],
                              t_prefill_end_ns=row["t_prefill_end_ns"], idle_power_w=idle, rise_s=rise)
        assert again.columns["energy_j"] == pytest.approx(row["energy_j"], rel=1e-9)
        assert again.columns["energy_net_j"] == pytest.approx(row["energy_net_j"], rel=1e-9)
        for d_new, d_old in zip(again.columns["domains"], row["domains"], strict=True):
            assert d_new["energy_j"] == pytest.approx(d_old["energy_j"], rel=1e-9), d_old["domain"]
