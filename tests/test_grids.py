"""A union of grids (``grids:``), configuration ids, ``config validate`` per grid, and the study's
two designs as built-ins: which points a CPU-only build refuses, and ``--cpu-only``."""

from __future__ import annotations

import json

import pytest

from energybench.config import apply_flags, config_hash, parse_config
from energybench.config.resolve import Flag
from energybench.errors import ConfigError, UsageError
from energybench.gpu import refuse_cpu_only_offload
from energybench.grid import configuration_id, configuration_ids, data_scheme, expand, id_schemes
from energybench.plan import plan_from_config, summarize

SHARED = {"prompt": {"suites": ["short_dialogue"], "prompt_ids": ["sd-01", "sd-02"]}, "n_gen": 16, "threads": 4,
          "batch": 128}
#: the study's P2 (its final report's table 1): two of its nine configurations are the same settings
P2 = [{"label": "cpu", "threads": [1, 4, 8], "n_gpu_layers": 0},
      {"label": "gpu", "n_gpu_layers": [0, 11, 22]},
      {"label": "gpu", "n_gpu_layers": 22, "batch": [128, 512, 1024]}]


def config(**extra):
    return parse_config({"models": ["synthetic:tiny"], "grid": SHARED, "grids": P2, **extra})


def test_union_of_grids_runs_shared_points_once_under_the_first_grids_id() -> None:
    c = config()
    points = expand(c)
    assert len(points) == 7 * 2 and len({p.point_id for p in points}) == len(points)
    ids = configuration_ids(c)
    assert sorted(set(ids.values())) == ["cpu-t1", "cpu-t4", "cpu-t8", "gpu-b1024", "gpu-b512", "gpu-l11", "gpu-l22"]
    by_knobs = {(p.n_threads, p.n_gpu_layers, p.n_batch): ids[p.point_id] for p in points}
    assert by_knobs[(4, 0, 128)] == "cpu-t4"  # the study's gpu-l0: same settings, measured once
    assert by_knobs[(4, 22, 128)] == "gpu-l22"  # the study's gpu-b128
    assert by_knobs[(4, 22, 1024)] == "gpu-b1024"
    assert {p.prompt.prompt_id for p in points} == {"sd-01", "sd-02"} and {p.n_gen for p in points} == {16}


def test_each_grid_replaces_shared_keys_and_the_normalized_config_round_trips() -> None:
    c = config()
    assert [g.threads for g in c.all_grids()] == [[1, 4, 8], [4], [4]]
    assert [g.batch for g in c.all_grids()] == [[128], [128], [128, 512, 1024]]
    data = c.normalized()
    assert "grid" not in data and len(data["grids"]) == 3
    again = parse_config(data)
    assert config_hash(again) == config_hash(c) and configuration_ids(again) == configuration_ids(c)


def test_single_grid_configs_keep_their_hash_fields_and_ids() -> None:
    c = parse_config({"models": ["synthetic:tiny"], "grid": {"threads": [1, 2], "batch": [16, 64]}})
    assert "grids" not in json.dumps(c.normalized()) or c.normalized()["grids"] is None
    assert sorted(set(configuration_ids(c).values())) == ["cpu-b64", "cpu-t1", "cpu-t2", "cpu.t2.b64"]
    # the hash of a single-grid config does not see the new fields at their defaults
    assert config_hash(c) == config_hash(parse_config({**c.normalized(), "grids": None, "cpu_only": False}))
    assert config_hash(c) != config_hash(parse_config({**c.normalized(), "cpu_only": True}))


def test_base_chooses_the_study_form() -> None:
    grid = {"label": "cpu", "threads": [1, 4, 8], "batch": [128, 512], "base": {"threads": 4, "batch": 512}}
    c = parse_config({"models": ["synthetic:tiny"], "grids": [grid]})
    names = {(p.n_threads, p.n_batch): cid for p in expand(c) for cid in [configuration_ids(c)[p.point_id]]}
    assert names == {(4, 512): "cpu-t4", (1, 512): "cpu-t1", (8, 512): "cpu-t8", (4, 128): "cpu-b128",
                     (1, 128): "cpu.t1.b128", (8, 128): "cpu.t8.b128"}


@pytest.mark.parametrize(("base", "message"), [
    ({"treads": 4}, "grids[0].base.treads = 4: not an axis of the grid; did you mean 'threads'?"),
    ({"threads": 2}, "grids[0].base.threads = 2: the base must be one of the grid's values of threads (1, 4)"),
    ([4], "grids[0].base = [4]: expected a mapping"),
])
def test_bad_base_is_one_line(base, message) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config({"models": ["synthetic:tiny"], "grids": [{"threads": [1, 4], "base": base}]})
    assert message in exc.value.one_line()


def test_bad_label_and_colliding_ids() -> None:
    with pytest.raises(ConfigError, match="label"):
        parse_config({"models": ["synthetic:tiny"], "grids": [{"label": "cpu-x", "threads": [1, 2]}]})
    # two grids naming different configurations alike: refused, with a fix
    c = parse_config({"models": ["synthetic:tiny"], "grids": [{"threads": [1, 2], "batch": 64},
                                                               {"threads": [1, 2], "batch": 32}]})
    with pytest.raises(ConfigError, match="configuration id 'cpu-t1' names two different configurations"):
        configuration_ids(c)


def test_flags_set_every_grid() -> None:
    c = apply_flags(config(), [Flag("grid.n_gen", [8], "-n/--n-gen"), Flag("cpu_only", True, "--cpu-only")])
    assert [g.n_gen for g in c.all_grids()] == [[8], [8], [8]] and c.cpu_only


def test_ids_of_runs_no_grid_describes_come_from_the_data() -> None:
    rows = [{"n_threads": t, "n_gpu_layers": 0, "n_batch": b} for t in (2, 8) for b in (64, 512)]
    scheme = data_scheme(rows)
    assert [configuration_id(r, [scheme]) for r in rows] == ["cpu-t2", "cpu-b512", "cpu-t8", "cpu.t8.b512"]
    schemes = id_schemes(config())
    assert configuration_id({"n_threads": 16, "n_gpu_layers": 0, "n_batch": 128}, schemes) is None


def test_cpu_only_leaves_out_what_needs_a_gpu_and_says_so() -> None:
    plan = plan_from_config(config(cpu_only=True))
    assert {plan.config_ids[p.point_id] for p in plan.points} == {"cpu-t1", "cpu-t4", "cpu-t8"}
    assert {plan.config_ids[p.point_id] for p in plan.left_out} == {"gpu-l11", "gpu-l22", "gpu-b512", "gpu-b1024"}
    s = summarize(config(cpu_only=True))
    assert s.n_points == 6 and s.n_left_out_points == 8 and s.left_out == ["gpu-l11", "gpu-l22", "gpu-b512", "gpu-b1024"]


def test_refusal_names_the_configurations_a_cpu_only_build_cannot_run() -> None:
    plan = plan_from_config(config())
    names = [plan.config_ids[p.point_id] for p in plan.points]
    with pytest.raises(UsageError) as exc:
        refuse_cpu_only_offload([p.n_gpu_layers for p in plan.points], False, names)
    line = exc.value.one_line()
    assert line.startswith("n_gpu_layers 11, 22 asks for GPU offload in 4 of 7 configurations (")
    for cid in ("gpu-l11", "gpu-l22", "gpu-b512", "gpu-b1024"):
        assert cid in line
    assert "cpu-t4" not in line.split("(")[1] and "8 of 14 points" in line and "--cpu-only" in line
    refuse_cpu_only_offload([0, 0], False, ["cpu-t1", "cpu-t4"])  # nothing to refuse
    refuse_cpu_only_offload([p.n_gpu_layers for p in plan.points], True, names)  # a CUDA build runs it all


def test_validate_counts_points_per_grid(cli) -> None:
    r = cli("config", "validate", "seed_p2")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "  grids           3 (a point two grids share runs once)" in lines
    assert any(ln.split() == ["1", "cpu", "threads", "3", "x", "prompt", "3:", "9", "points", "(cpu-t1,", "cpu-t4,",
                              "cpu-t8)"] for ln in lines), r.stdout
    assert any("gpu" in ln and "9 points, 3 already in an earlier grid (cpu-t4, gpu-l11, gpu-l22)" in ln for ln in lines)
    assert any("9 points, 3 already in an earlier grid (gpu-l22, gpu-b512, gpu-b1024)" in ln for ln in lines)
    assert "  points          21 (7 configurations)" in lines
    assert "sweep --cpu-only" in r.stderr  # this machine's build is CPU-only
    doc = json.loads(cli("config", "validate", "seed_p1", "--json").stdout)
    assert [(g["label"], g["n_points"], g["configurations"]) for g in doc["grids"]] == [("cpu", 9, ["cpu"]),
                                                                                         ("gpu", 9, ["gpu"])]
    assert doc["n_points"] == 18 and doc["n_configurations"] == 2


@pytest.mark.slow
def test_seed_p2_refuses_then_runs_its_cpu_part(cli, tmp_path, tiny_model) -> None:
    fast = ["-m", "synthetic:tiny", "-n", "4", "-r", "2", "--warmup", "0", "--idle", "0.3", "--cooldown", "0",
            "--min-window", "0.05", "--cpu-tdp-w", "65"]
    r = cli("sweep", "--config", "seed_p2", "--out", str(tmp_path / "no"), "--quiet", *fast)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "asks for GPU offload in 4 of 7 configurations (gpu-b512, gpu-b1024, gpu-l11, gpu-l22;" in r.stderr
    assert "run the other 9 points with --cpu-only" in r.stderr and not (tmp_path / "no" / "runs.parquet").exists()
    out = tmp_path / "cpu"
    r = cli("sweep", "--config", "seed_p2", "--cpu-only", "--out", str(out), "--json", *fast)
    assert r.returncode == 0, r.stderr
    assert "leaving out 12 points that need a GPU (gpu-l11, gpu-l22, gpu-b512, gpu-b1024); running the other 9" \
        in " ".join(r.stderr.split())
    assert json.loads(r.stdout)["n_points"] == 9
    assert json.loads((out / "metadata.json").read_text())["config"]["cpu_only"] is True
    r = cli("report", str(out), "-o", str(tmp_path / "rep"), "--no-figures", "--format", "json", "--bootstrap", "200")
    study = json.loads(r.stdout)["study"]
    assert [(x["suite"], x["backend_mode"], x["n_configurations"], x["n_runs"]) for x in study["suite_backend"]] == \
        [("short_dialogue", "cpu", 3, 18)]
    assert [x["config_id"] for x in study["edp_ranking"]] and {x["config_id"] for x in study["edp_ranking"]} == \
        {"cpu-t1", "cpu-t4", "cpu-t8"}
    assert study["cpu_vs_gpu"] == []
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "### Summary per suite and backend" in md and "No CPU-vs-GPU headline" in md
    header = md.split("## Results per configuration")[1].split("\n| ", 1)[1].split("\n", 1)[0]
    assert "| ms/token mean | ms/token p95 |" in header  # the study's latency per token, in the results table
