"""Sharded sweeps: the partition (every point exactly once over N shards, balanced by planned runs,
load groups whole where that stays balanced, one load group split evenly), one config hash for
every shard, the shard recorded in metadata, resume keeping its shard, and ``report`` merging the
shards of one sweep while refusing shards of different sweeps."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
import yaml

from energybench.config import parse_config
from energybench.errors import UsageError
from energybench.grid import group_by_load
from energybench.plan import plan_from_config
from energybench.point import RunPoint
from energybench.report.build import load_sets
from energybench.shard import Shard, partition
from handmade_results import metadata, write_set


def _config(**grid) -> dict:
    g = {"threads": [1, 2, 3, 4, 5], "batch": [32, 64], "prompt": {"n_prompt": 24}, "n_gen": 8}
    g.update(grid)
    return {"name": "s", "models": ["synthetic:tiny"], "grid": g, "warmup": 1, "repetitions": {"fixed": 3},
            "cooldown": {"fixed_s": 0}, "idle_baseline_s": 0, "meters": ["estimate"], "cpu_tdp_w": 10}


def _runs(plan) -> int:
    return plan.runs_total()


@pytest.mark.parametrize("grid", [{}, {"repack": [True, False], "use_mmap": [True, False]}])
@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 10])
def test_every_point_runs_in_exactly_one_shard_with_one_config_hash(grid, n):
    cfg = parse_config(_config(**grid))
    whole = plan_from_config(cfg)
    shards = [plan_from_config(cfg, shard=Shard(k, n)) for k in range(1, n + 1)]
    seen = Counter(p.point_id for s in shards for p in s.points)
    assert set(seen) == {p.point_id for p in whole.points} and set(seen.values()) == {1}
    assert {s.config_hash for s in shards} == {whole.config_hash}
    assert sum(_runs(s) for s in shards) == _runs(whole)
    for s in shards:  # each shard keeps the plan's own order
        order = [p.point_id for p in whole.points]
        assert [p.point_id for p in s.points] == sorted((p.point_id for p in s.points), key=order.index)
        assert s.points_total == len(whole.points) and s.shard.count == n


def test_one_load_group_is_split_evenly_by_planned_runs():
    cfg = parse_config(_config())  # 10 points, threads and batch are runtime knobs: one load group
    whole = plan_from_config(cfg)
    assert len(group_by_load(whole.points)) == 1
    per_point = whole.warmup + whole.repetitions.fixed
    for n in (2, 3, 4):
        runs = [_runs(plan_from_config(cfg, shard=Shard(k, n))) for k in range(1, n + 1)]
        assert max(runs) - min(runs) <= per_point, (n, runs)  # within one point's runs
        assert abs(max(runs) - _runs(whole) / n) <= per_point


def test_load_groups_stay_whole_when_that_stays_balanced():
    # 4 load groups of 5 points: 2 or 4 shards cut at group boundaries, one model load each
    cfg = parse_config(_config(threads=[1, 2, 3, 4, 5], batch=[32], repack=[True, False], use_mmap=[True, False]))
    for n in (2, 4):
        for k in range(1, n + 1):
            s = plan_from_config(cfg, shard=Shard(k, n))
            assert len(group_by_load(s.points)) == 4 // n and len(s.points) == 20 // n
    # 3 shards cannot be balanced with whole groups of 5: one group per cut is split, runs stay even
    runs = [_runs(plan_from_config(cfg, shard=Shard(k, 3))) for k in (1, 2, 3)]
    assert max(runs) - min(runs) <= 4


def test_shards_balance_planned_runs_not_point_counts():
    pts = [RunPoint(model="m", n_threads=t) for t in range(1, 7)]
    weight = {pts[0].point_id: 25} | {p.point_id: 5 for p in pts[1:]}
    parts = partition(pts, lambda p: weight[p.point_id], 2)
    assert [sum(weight[p.point_id] for p in part) for part in parts] == [25, 25]  # not 3 + 3 points
    assert [len(part) for part in parts] == [1, 5]


def test_shard_spec_is_checked_with_the_way_to_count_an_array():
    assert Shard.parse("2/8") == Shard(2, 8) and str(Shard.parse(" 3 / 4 ")) == "3/4"
    with pytest.raises(UsageError, match="K must be 1..N") as e:
        Shard.parse("0/4")
    assert "K = (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN) / step + 1" in e.value.one_line()
    with pytest.raises(UsageError, match="K must be 1..N"):
        Shard.parse("5/4")
    with pytest.raises(UsageError, match="expected K/N"):
        Shard.parse("2of4")
    with pytest.raises(UsageError, match="has no point"):
        plan_from_config(parse_config(_config(threads=[1], batch=[32])), shard=Shard(2, 2))


# ----------------------------------------------------------------------------- merging in report


def _shard_set(root: Path, k: int, n: int, threads: tuple[int, ...], *, sweep: str = "job-1", cfg: str = "c" * 64,
               **effects) -> Path:
    meta = metadata(shard={"index": k, "count": n}, sweep_id=sweep, config_hash=cfg, status="finished",
                    config={"name": "study"})
    return write_set(root, threads=threads, meta=meta, **effects)


def test_report_merges_the_shards_of_one_sweep(tmp_path):
    from energybench.report.build import build_report

    for k, threads in ((1, (1, 2)), (2, (3,)), (3, (4,))):
        _shard_set(tmp_path / "study" / f"shard-{k}-of-3", k, 3, threads)
    s = build_report([str(tmp_path / "study" / "*")], tmp_path / "rep", figures=False, n_boot=200)
    (one,) = s.summary["sets"]
    assert one["label"] == "study" and one["configurations"] == 4 and one["runs"] == 40
    assert sorted(r["config"]["n_threads"] for r in s.summary["configurations"]) == [1, 2, 3, 4]
    md = s.files["md"].read_text()
    assert "shard 2/3" in md and "shard-3-of-3" in md  # provenance lists the shards
    assert not any("missing" in w for w in s.warnings)


def test_a_missing_shard_is_a_warning_not_an_error(tmp_path):
    for k in (1, 3):
        _shard_set(tmp_path / f"shard-{k}", k, 3, (k,))
    (rs,) = load_sets([tmp_path / "shard-1", tmp_path / "shard-3"])
    assert rs.metadata["status"] == "incomplete"
    assert rs.notes == ["2 of 3 shards: shard(s) 2/3 missing, their configurations are absent"]


def test_shards_of_different_sweeps_are_refused_in_one_line(tmp_path, cli):
    a = _shard_set(tmp_path / "a", 1, 2, (1,), sweep="job-1")
    b = _shard_set(tmp_path / "b", 2, 2, (2,), sweep="job-2")  # the same config, submitted again
    with pytest.raises(UsageError, match="refusing to merge shards of different sweeps: a .*job-1.* and b .*job-2"):
        load_sets([a, b])
    c = _shard_set(tmp_path / "c", 2, 2, (2,), cfg="d" * 64)  # another config
    with pytest.raises(UsageError, match="different sweeps"):
        load_sets([a, c])
    d = _shard_set(tmp_path / "d", 2, 3, (2,))  # another shard count
    with pytest.raises(UsageError, match="different sweeps"):
        load_sets([a, d])
    e = _shard_set(tmp_path / "e", 1, 2, (2,))
    with pytest.raises(UsageError, match="shard 1/2 given twice"):
        load_sets([a, e])
    f = _shard_set(tmp_path / "f", 2, 2, (1,))  # claims the other shard but holds shard 1's point
    with pytest.raises(UsageError, match="both hold configuration"):
        load_sets([a, f])
    r = cli("report", str(a), str(b), "--no-figures")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert "different sweeps" in r.stderr


def test_compare_merges_each_side_on_its_own(tmp_path):
    from energybench.compare import compare_results

    for k in (1, 2):
        _shard_set(tmp_path / "base" / f"s{k}", k, 2, (k,), sweep="job-1")
        _shard_set(tmp_path / "new" / f"s{k}", k, 2, (k,), sweep="job-2", decode=1.2, seed=1)
    c = compare_results(str(tmp_path / "base" / "*"), [str(tmp_path / "new" / "*")])
    (s,) = c.sets
    assert c.base == "base" and s.label == "new" and len(s.pairs) == 2
    assert {p.changes[0].verdict for p in s.pairs} == {"worse"}
    with pytest.raises(UsageError, match="different sweeps"):  # BASE mixes shards of both sweeps
        compare_results(str(tmp_path / "*" / "s1"), [str(tmp_path / "new" / "s2")])
    for name in ("plain-1", "plain-2"):
        write_set(tmp_path / name)
    with pytest.raises(UsageError, match="BASE .* holds 2 result sets: plain-1, plain-2"):
        compare_results(str(tmp_path / "plain-*"), [str(tmp_path / "new" / "*")])


# ----------------------------------------------------------------------------- real sweeps


def test_two_real_shards_record_their_part_resume_it_and_merge(cli, tiny_model, tmp_path):
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump(_config(threads=[1, 2], batch=[16, 32])))  # 4 points
    for k in (1, 2):
        r = cli("sweep", "-c", str(cfg), "--shard", f"{k}/2", "--sweep-id", "job-7", "-o", str(tmp_path / f"s{k}"),
                "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["n_points"] == 2
    metas = [json.loads((tmp_path / f"s{k}" / "metadata.json").read_text()) for k in (1, 2)]
    assert [m["shard"]["index"] for m in metas] == [1, 2] and {m["shard"]["points_total"] for m in metas} == {4}
    assert metas[0]["config_hash"] == metas[1]["config_hash"] and {m["sweep_id"] for m in metas} == {"job-7"}
    runs = [pl.read_parquet(tmp_path / f"s{k}" / "runs.parquet") for k in (1, 2)]
    assert not set(runs[0]["point_id"]) & set(runs[1]["point_id"])
    assert set(runs[0]["sweep_id"]) == {"job-7"}
    # resuming keeps the stored shard; another one is refused
    r = cli("sweep", "--resume", str(tmp_path / "s1"), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["n_runs_this_session"] == 0, r.stderr
    r = cli("sweep", "--resume", str(tmp_path / "s1"), "--shard", "2/2")
    assert r.returncode == 2 and "this sweep ran shard 1/2: it cannot be resumed as shard 2/2" in r.stderr
    r = cli("sweep", "--resume", str(tmp_path / "s1"), "--sweep-id", "job-8")
    assert r.returncode == 2 and "this sweep's id is job-7, not job-8" in r.stderr
    r = cli("report", str(tmp_path / "s*"), "--no-figures", "--format", "json", "-o", str(tmp_path / "rep"))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert len(out["sets"]) == 1 and out["sets"][0]["configurations"] == 4
