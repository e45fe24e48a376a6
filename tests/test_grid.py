"""Range strings, grid expansion, load groups, run order, plan summary."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from energybench.config import load_config, parse_config, parse_range
from energybench.errors import ConfigError
from energybench.point import LOAD_FIELDS, RunPoint
from energybench.grid import count_loads, expand, group_by_load, order_points
from energybench.grid import plan_points as plan
from energybench.plan import summarize

DATA = Path(__file__).parent / "data" / "configs"
REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- ranges


@pytest.mark.parametrize("text,expected", [
    ("4", [4]),
    ("-1", [-1]),
    ("1-4", [1, 2, 3, 4]),
    ("1-8*2", [1, 2, 4, 8]),
    ("1-10*3", [1, 3, 9]),
    ("0-22+11", [0, 11, 22]),
    ("0-23+11", [0, 11, 22]),
    ("0,11,22", [0, 11, 22]),
    ("1-2, 8", [1, 2, 8]),
    (" 128 , 512 ", [128, 512]),
    ("-1-1", [-1, 0, 1]),
    ("5-5", [5]),
])
def test_parse_range(text: str, expected: list[int]) -> None:
    assert parse_range(text) == expected


@pytest.mark.parametrize("text,fragment", [
    ("", "empty"),
    ("a", "cannot parse 'a'"),
    ("1..8", "cannot parse '1..8'"),
    ("1,,2", "cannot parse ''"),
    ("8-1", "runs backwards"),
    ("1-8*1", "factor"),
    ("0-8*2", "start at 1"),
    ("0-8+0", "step"),
    ("1-8/2", "cannot parse"),
    ("1-100000000", "more than 4096"),
])
def test_parse_range_errors(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment.replace("*", r"\*").replace(".", r"\.")):
        parse_range(text)


# ----------------------------------------------------------------------------- expansion


def small(**grid) -> dict:
    return {"models": ["m1.gguf", "m2.gguf"], "grid": grid, "cooldown": 0, "idle_baseline_s": 0}


def test_expand_is_the_cartesian_product_models_outermost() -> None:
    c = parse_config(small(threads=[1, 2, 4], batch=[64, 128], n_gpu_layers=[0, 5], prompt={"n_prompt": [16, 32]}))
    points = expand(c)
    assert len(points) == 2 * 3 * 2 * 2 * 2
    assert all(isinstance(p, RunPoint) for p in points)
    half = len(points) // 2
    assert {p.model for p in points[:half]} == {"m1.gguf"} and {p.model for p in points[half:]} == {"m2.gguf"}
    combos = {(p.model, p.n_threads, p.n_batch, p.n_gpu_layers, p.prompt.n_prompt) for p in points}
    assert len(combos) == len(points)
    assert len({p.point_id for p in points}) == len(points)


def test_expand_counts_match_axis_sizes_for_full_config() -> None:
    c = load_config(DATA / "valid_full.yaml")
    points = expand(c)
    sizes = c.grid.axis_sizes()
    assert sizes["prompt"] == 2 + 2 + 1  # two lengths, two selected suite prompts, one text
    assert len(points) == len(c.models) * math.prod(sizes.values()) == 2560
    assert len({p.point_id for p in points}) == len(points)


def test_point_fields_come_from_the_config() -> None:
    c = parse_config({"models": "m.gguf", "backend": "llama.cpp", "min_window_s": 0.25,
                      "grid": {"batch": [64, 1024], "ubatch": "auto", "threads_batch": [None, 3], "seed": 9,
                               "flash_attn": "off", "n_ctx": 2048, "repack": False, "n_gen": 7,
                               "prompt": {"suites": ["short_dialogue"], "prompt_ids": ["sd-03"]}}})
    points = expand(c)
    assert len(points) == 4
    by_batch = {(p.n_batch, p.n_threads_batch): p for p in points}
    assert by_batch[(64, None)].n_ubatch == 64  # auto = min(batch, 512): llama.cpp's default, clamped
    assert by_batch[(1024, 3)].n_ubatch == 512
    p = points[0]
    assert (p.seed, p.flash_attn, p.n_ctx, p.repack, p.n_gen, p.min_window_s) == (9, "off", 2048, False, 7, 0.25)
    assert (p.prompt.kind, p.prompt.suite, p.prompt.prompt_id, p.prompt.n_prompt) == ("suite", "short_dialogue",
                                                                                      "sd-03", None)


def test_prompt_axis_order_and_kinds() -> None:
    c = parse_config({"models": "m", "grid": {"prompt": {"n_prompt": [8, 16], "suites": ["analytical_reasoning"],
                                                         "text": ["hello there", "general kenobi"]}}})
    labels = [p.prompt.label() for p in expand(c)]
    assert labels[:2] == ["synthetic:8", "synthetic:16"]
    assert labels[2:12] == [f"analytical_reasoning/ar-{i:02d}" for i in range(1, 11)]
    assert labels[12].startswith("text:") and labels[13].startswith("text:") and labels[12] != labels[13]


def test_load_groups() -> None:
    c = parse_config(small(threads=[1, 2], n_gpu_layers=[0, 5], repack=[True, False]))
    points = expand(c)
    groups = group_by_load(points)
    assert len(groups) == 2 * 2 * 2  # models x n_gpu_layers x repack (threads is a runtime setting)
    assert sum(len(g) for g in groups) == len(points)
    for g in groups:
        assert {p.load_key for p in g.points} == {g.key}
        assert len({tuple(getattr(p, k) for k in LOAD_FIELDS) for p in g.points}) == 1
    # expansion keeps each load group contiguous: grouped order loads each model setting once
    assert count_loads(points) == len(groups)


# ----------------------------------------------------------------------------- order


def groups_of(points: list[RunPoint]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in points:
        out.setdefault(p.load_key, []).append(p.point_id)
    return out


@pytest.fixture
def points() -> list[RunPoint]:
    c = parse_config(small(threads=[1, 2, 3, 4], batch=[32, 64, 128], n_gpu_layers=[0, 7]))
    return expand(c)


def test_grouped_is_expansion_order(points: list[RunPoint]) -> None:
    assert order_points(points, "grouped") == points


def test_shuffled_is_a_seeded_permutation_within_groups(points: list[RunPoint]) -> None:
    a = order_points(points, "shuffled", seed=1)
    assert Counter(p.point_id for p in a) == Counter(p.point_id for p in points)
    assert count_loads(a) == len(group_by_load(points))  # still one load per group
    assert list(groups_of(a)) == list(groups_of(points))  # groups keep their order
    for key, ids in groups_of(a).items():
        assert sorted(ids) == sorted(groups_of(points)[key])
    assert a != points  # 12 points per group: the identity permutation has odds 4 x (1/12!)
    assert order_points(points, "shuffled", seed=1) == a  # seeded
    assert order_points(points, "shuffled", seed=2) != a
    # within a group, the order depends on the set of points and the seed, not on the input order
    regrouped = [p for g in group_by_load(points) for p in random.Random(7).sample(g.points, len(g))]
    assert regrouped != points
    assert order_points(regrouped, "shuffled", seed=1) == a


def test_interleaved_round_robins_across_groups(points: list[RunPoint]) -> None:
    groups = group_by_load(points)
    k = len(groups)
    assert k == 4
    out = order_points(points, "interleaved", seed=3)
    assert Counter(p.point_id for p in out) == Counter(p.point_id for p in points)
    keys = [g.key for g in groups]
    assert [p.load_key for p in out] == [keys[i % k] for i in range(len(out))]
    assert count_loads(out) == len(out)
    assert order_points(points, "interleaved", seed=3) == out
    # within a group, the order is the group's shuffled order
    shuffled = order_points(points, "shuffled", seed=3)
    assert groups_of(out) == groups_of(shuffled)


def test_interleaved_with_unequal_groups() -> None:
    a = expand(parse_config({"models": "a.gguf", "grid": {"threads": [1, 2, 3]}}))
    b = expand(parse_config({"models": "b.gguf", "grid": {"threads": [1]}}))
    out = order_points(a + b, "interleaved")
    assert [p.model for p in out] == ["a.gguf", "b.gguf", "a.gguf", "a.gguf"]


def test_unknown_order_is_a_config_error(points: list[RunPoint]) -> None:
    with pytest.raises(ConfigError, match="order = 'random': must be one of grouped, shuffled, interleaved"):
        order_points(points, "random")


def test_plan_uses_config_order_and_seed() -> None:
    base = small(threads=[1, 2, 3, 4], n_gpu_layers=[0, 7])
    c = parse_config({**base, "order": "interleaved", "order_seed": 11})
    assert plan(c) == order_points(expand(c), "interleaved", 11)


def test_point_ids_and_order_are_stable_across_processes() -> None:
    path = REPO / "examples" / "p2_ablation.yaml"
    here = [p.point_id for p in plan(load_config(path))]
    code = ("import json, sys; from energybench.config import load_config; from energybench.grid import plan_points as plan; "
            "print(json.dumps([p.point_id for p in plan(load_config(sys.argv[1]))]))")
    env = {**os.environ, "PYTHONHASHSEED": "977"}
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env,
                         check=True, timeout=120)
    assert json.loads(out.stdout) == here


# ----------------------------------------------------------------------------- summary


def test_summary_of_quick_example() -> None:
    s = summarize(load_config(REPO / "examples" / "quick.yaml"))
    assert (s.n_models, s.n_points, s.n_load_groups, s.n_loads) == (1, 4, 1, 1)
    assert (s.runs_min, s.runs_max, s.warmup_per_point) == (24, 24, 1)
    assert s.est_min_duration_s == pytest.approx(2 + 24 * (1.0 + 1.0))
    assert s.est_min_duration_s < 55  # the quick example is meant to finish in about a minute


def test_summary_adaptive_and_until_idle() -> None:
    c = parse_config({"models": "m", "grid": {"threads": [1, 2]}, "warmup": 1, "idle_baseline_s": 10,
                      "repetitions": {"adaptive": {"min": 3, "max": 9}},
                      "cooldown": {"until_idle": {"hold_s": 2, "max_s": 20}}, "min_window_s": 0.5})
    s = summarize(c)
    assert (s.runs_min, s.runs_max) == (2 * 4, 2 * 10)
    assert s.est_min_duration_s == pytest.approx(10 + 8 * (2 + 0.5))


def test_min_duration_counts_periodic_idle_baselines() -> None:
    c = parse_config({"models": "m", "idle_baseline_s": 5, "idle_every_min": 1, "cooldown": 10, "warmup": 0,
                      "repetitions": 30})
    # 30 runs x 10 s = 300 s of cooldowns = 5 periods of 60 s -> 1 + 5 baselines of 5 s
    assert summarize(c).est_min_duration_s == pytest.approx(300 + 6 * 5)
