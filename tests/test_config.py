"""Valid sweep configs: defaults, normalisation, hashing, the JSON Schema, and the `energybench
config` commands (flags merged over files: tests/test_cli_options.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from energybench.cli import main
from energybench import defaults
from energybench.config import (
    SweepConfig,
    allowed_keys,
    config_hash,
    config_json_schema,
    load_config,
    parse_config,
)
from energybench.errors import ConfigError

DATA = Path(__file__).parent / "data" / "configs"
REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- loading


def test_minimal_config_gets_documented_defaults() -> None:
    c = load_config(DATA / "valid_minimal.yaml")
    assert c.models == ["synthetic:tiny"]  # a scalar becomes a one-item list
    assert c.backend == "llama.cpp"
    g = c.grid
    assert (g.threads, g.threads_batch, g.n_gpu_layers, g.batch, g.ubatch) == ([defaults.threads()], [None], [0], [512],
                                                                               [None])
    assert (g.flash_attn, g.n_ctx, g.n_gen, g.repack, g.seed) == (["auto"], [None], [64], [True], [0])
    assert g.prompt.n_prompt == [128] and g.prompt.suites is None and g.prompt.text is None
    assert c.warmup == 1
    assert c.repetitions.fixed == 10 and c.repetitions.adaptive is None  # >= 10 reps for a CI
    assert c.cooldown.until_idle is not None and c.cooldown.fixed_s is None
    assert c.idle_baseline_s > 0
    assert c.order == "shuffled" and c.meters == "auto" and c.max_failures >= 1
    assert c.source == str(DATA / "valid_minimal.yaml")


def test_full_config_every_key() -> None:
    c = load_config(DATA / "valid_full.yaml")
    g = c.grid
    assert g.threads == [1, 2]
    assert g.threads_batch == [None, 2]
    assert g.ubatch == [None, 32]
    assert g.flash_attn == ["auto", "off"]  # YAML 1.1 reads bare `off` as false
    assert g.n_ctx == [None, 1024]
    assert g.prompt.n_prompt == [32, 64]
    assert g.prompt.suites == ["short_dialogue", "analytical_reasoning"]
    assert g.prompt.prompt_ids == ["sd-01", "ar-02"]
    assert g.prompt.text == ["The quick brown fox, measured."]
    assert g.repack == [True, False] and g.use_mmap == [True] and g.seed == [7]
    a = c.repetitions.adaptive
    assert a is not None and (a.target_ci_pct, a.min, a.max, a.metric) == (2.5, 4, 12, "decode_tok_s")
    assert c.cooldown.until_idle is not None and c.cooldown.min_s == 2 and c.cooldown.max_s == 30
    assert c.meters == ["rapl", "estimate"]
    assert c.output_dir == "results/full-example"


def test_range_and_list_spellings_are_the_same_config() -> None:
    a = load_config(DATA / "valid_ranges.yaml")
    b = load_config(DATA / "valid_lists.yaml")
    assert a.grid.threads == [1, 2, 4, 8]
    assert a.grid.n_gpu_layers == [0, 11, 22]
    assert a.grid.flash_attn == ["on", "off"]
    assert a.normalized() == b.normalized()
    assert config_hash(a) == config_hash(b)


@pytest.mark.parametrize("text,expected", [
    ("flash_attn: on", ["on"]), ("flash_attn: [on, off, auto]", ["on", "off", "auto"]),
    ("flash_attn: 'off'", ["off"]), ("flash_attn: true", ["on"]),
])
def test_yaml_booleans_for_flash_attn(text: str, expected: list[str]) -> None:
    c = parse_config({"models": ["m.gguf"], "grid": yaml.safe_load(text)})
    assert c.grid.flash_attn == expected


def test_scalar_shortcuts() -> None:
    c = parse_config({"models": "a.gguf", "repetitions": 4, "cooldown": 0.5,
                      "grid": {"n_gpu_layers": "all", "prompt": [short for short in ("short_dialogue",)]}})
    assert c.repetitions.fixed == 4 and c.cooldown.fixed_s == 0.5
    assert c.grid.n_gpu_layers == [-1]
    assert c.grid.prompt.suites == ["short_dialogue"] and c.grid.prompt.n_prompt is None
    c2 = parse_config({"models": "a.gguf", "grid": {"prompt": "64,256"}, "cooldown": "until_idle"})
    assert c2.grid.prompt.n_prompt == [64, 256] and c2.cooldown.until_idle is not None


def test_nctx_check_uses_largest_prompt_and_generation() -> None:
    ok = parse_config({"models": "m", "grid": {"n_ctx": 576, "prompt": {"n_prompt": [64, 512]}, "n_gen": [16, 64]}})
    assert ok.grid.n_ctx == [576]
    with pytest.raises(ConfigError, match=r"grid\.n_ctx = 575: too small.*n_ctx >= 576"):
        parse_config({"models": "m", "grid": {"n_ctx": 575, "prompt": {"n_prompt": [64, 512]}, "n_gen": [16, 64]}})


def test_ubatch_auto_allows_any_batch_and_explicit_is_checked() -> None:
    ok = parse_config({"models": "m", "grid": {"batch": [128, 512, 1024], "ubatch": "auto"}})
    assert ok.grid.ubatch == [None]
    ok2 = parse_config({"models": "m", "grid": {"batch": [128, 512], "ubatch": [64, 128]}})
    assert ok2.grid.ubatch == [64, 128]


# ----------------------------------------------------------------------------- normalisation + hash


@pytest.mark.parametrize("name", ["valid_minimal.yaml", "valid_full.yaml", "valid_ranges.yaml"])
def test_to_yaml_round_trips(name: str, tmp_path: Path) -> None:
    c = load_config(DATA / name)
    p = tmp_path / "again.yaml"
    p.write_text(c.to_yaml())
    again = load_config(p)
    assert again.normalized() == c.normalized()
    assert config_hash(again) == config_hash(c)


def test_hash_changes_with_anything_measured_but_not_output_dir() -> None:
    base = {"models": ["synthetic:tiny"], "grid": {"threads": [1, 2]}}
    h = config_hash(parse_config(base))
    assert len(h) == 64 and int(h, 16) >= 0
    assert config_hash(parse_config({**base, "output_dir": "elsewhere"})) == h
    assert config_hash(parse_config({**base, "grid": {"threads": [1, 3]}})) != h
    assert config_hash(parse_config({**base, "warmup": 2})) != h
    assert config_hash(parse_config({**base, "models": ["synthetic:tiny:Q8_0"]})) != h
    assert config_hash(parse_config(base), exclude=()) != config_hash(parse_config({**base, "output_dir": "x"}), exclude=())


def test_hash_is_stable_across_processes() -> None:
    code = ("import sys; from energybench.config import load_config, config_hash; "
            "print(config_hash(load_config(sys.argv[1])))")
    here = config_hash(load_config(DATA / "valid_full.yaml"))
    for seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code, str(DATA / "valid_full.yaml")], capture_output=True,
                             text=True, env=env, check=True, timeout=120)
        assert out.stdout.strip() == here


# ----------------------------------------------------------------------------- schema


def test_json_schema_describes_the_file_format() -> None:
    schema = config_json_schema()
    assert set(schema["properties"]) == set(allowed_keys())
    assert schema["required"] == ["models"]
    assert schema["additionalProperties"] is False
    for name, sub in schema["$defs"].items():
        assert sub.get("additionalProperties") is False, name
    threads = schema["$defs"]["Grid"]["properties"]["threads"]
    assert any(alt.get("type") == "string" for alt in threads["anyOf"])  # range strings are allowed
    json.dumps(schema)  # serialisable


# ----------------------------------------------------------------------------- CLI


def test_cli_validate_prints_summary(capsys: pytest.CaptureFixture[str]) -> None:
    path = REPO / "examples" / "quick.yaml"
    assert main(["config", "validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"ok: {path}")
    assert "points          4" in out
    assert "runs            24 (1 warm-up + 5 measured per point)" in out
    assert "load groups     1" in out
    assert "min. duration   50 s" in out  # 2 s idle + 24 runs x (1 s cooldown + 1 s min window)


def test_cli_validate_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "validate", "--json", str(DATA / "valid_full.yaml")]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True
    assert data["n_points"] == 2560 and data["n_load_groups"] == 4
    assert data["runs_min"] == 2560 * 6 and data["runs_max"] == 2560 * 14
    assert data["config_hash"] == config_hash(load_config(DATA / "valid_full.yaml"))


def test_cli_show_prints_normalized_yaml(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["config", "show", str(DATA / "valid_ranges.yaml")]) == 0
    out = capsys.readouterr().out
    data = yaml.safe_load(out)
    assert data["grid"]["threads"] == [1, 2, 4, 8]
    assert data["grid"]["ubatch"] == ["auto"]
    assert parse_config(data).normalized() == load_config(DATA / "valid_lists.yaml").normalized()
    assert main(["config", "show", "--json", str(DATA / "valid_ranges.yaml")]) == 0
    assert json.loads(capsys.readouterr().out)["grid"]["n_gpu_layers"] == [0, 11, 22]


def test_cli_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "energybench sweep config"
    assert "grid" in schema["properties"]


def test_cli_in_a_subprocess(cli) -> None:  # the installed entry point, exit codes as a shell sees them
    ok = cli("config", "validate", str(DATA / "valid_minimal.yaml"))
    assert ok.returncode == 0 and ok.stdout.startswith("ok:")
    bad = cli("config", "validate", str(DATA / "bad_negative_threads.yaml"))
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "grid.threads[1] = -2" in bad.stderr


def test_sweep_config_is_frozen() -> None:
    c = load_config(DATA / "valid_minimal.yaml")
    assert isinstance(c, SweepConfig)
    with pytest.raises(Exception):
        c.warmup = 5  # type: ignore[misc]


def test_adaptive_metrics_are_the_vocabulary_s_per_run_metrics() -> None:
    import typing

    from energybench.config.schema import ADAPTIVE_METRICS, AdaptiveMetric
    from energybench.metrics import METRICS

    assert typing.get_args(AdaptiveMetric) == ADAPTIVE_METRICS
    assert set(ADAPTIVE_METRICS) == {n for n, m in METRICS.items() if m.adaptive}
    assert "j_per_output_token" in ADAPTIVE_METRICS and "j_per_token" not in ADAPTIVE_METRICS


def test_the_retired_j_per_token_name_says_what_to_use() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"models": ["synthetic:tiny"], "repetitions": {"adaptive": {"metric": "j_per_token"}}})
    line = info.value.one_line()
    assert "repetitions.adaptive.metric = 'j_per_token'" in line
    assert "j_per_output_token" in line and "j_per_processed_token" in line


@pytest.mark.parametrize("name", ["valid_minimal.yaml", "valid_full.yaml"])
def test_normalized_dict_round_trips(name: str) -> None:
    """metadata.json stores config.normalized(); a resume can rebuild the same config from it."""
    c = load_config(DATA / name)
    stored = json.loads(json.dumps(c.normalized()))
    again = parse_config(stored, source="metadata.json")
    assert again.normalized() == c.normalized() and config_hash(again) == config_hash(c)
