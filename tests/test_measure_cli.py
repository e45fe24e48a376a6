"""`energybench measure` end to end: real CLI subprocess, real worker, real Parquet."""

from __future__ import annotations

import json

import polars as pl
import pytest

from energybench.results import read_metadata, read_runs, read_samples

pytestmark = pytest.mark.slow


def test_measure_json_writes_parquet_with_flags_and_metadata(tmp_path, cli, tiny_model):
    out = tmp_path / "m"
    r = cli("measure", "-m", "synthetic:tiny", "-t", "1", "-p", "20", "-n", "6", "-r", "3", "--warmup", "1",
            "--idle", "0.3", "--cooldown", "0", "--meter", "estimate", "--cpu-tdp-w", "65", "--json", "-o", str(out))
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["n_ok"] == 3 and s["n_failed"] == 0 and s["synthetic"] is True
    assert s["out_dir"] == str(out)
    for key in ("ttft_ms", "prefill_tok_s", "decode_tok_s", "itl_p50_ms", "itl_p95_ms"):
        assert s["metrics"][key]["median"] > 0
    # the estimate meter (the one asked for) is used, labelled, and warned about
    assert s["energy_source"] == "estimate" and any("ESTIMATE" in w for w in s["warnings"])
    assert s["metrics"]["j_per_output_token"]["median"] > 0
    runs = read_runs(out)
    assert runs.height == 4
    assert runs.filter(pl.col("is_warmup")).height == 1
    assert (runs["n_gen_tokens"] == 6).all() and (runs["n_prompt_tokens"] == 20).all()
    assert runs["token_t_ns"].list.len().eq(6).all()
    assert (runs["perf_n_eval"] == 5).all()  # llama.cpp's counters beside ours
    assert runs["model_sha256"].str.len_chars().eq(64).all()
    meta = read_metadata(out)
    assert meta["kind"] == "measure" and meta["backend"]["name"] == "llama.cpp"
    assert "system_info" in meta["backend"] and meta["energybench_version"]
    assert meta["host"]["cpu_model"] and "clock_offset_ns" in meta
    assert meta["sampler"]["period_s"] == 0.02 and meta["sampler"]["thread_nice"] == 19
    assert read_samples(out).height > 0


def test_measure_prints_a_table(tmp_path, cli, tiny_model):
    r = cli("measure", "-m", "synthetic:tiny", "-t", "1", "-p", "16", "-n", "4", "-r", "1", "--warmup", "0",
            "--idle", "0", "-o", str(tmp_path / "m"))
    assert r.returncode == 0, r.stderr
    assert "decode" in r.stdout and "TTFT" in r.stdout and "tok/s" in r.stdout
    assert str(tmp_path / "m") in r.stdout


def test_measure_worker_crash_is_a_failed_run_and_exit_1(tmp_path, cli, tiny_model):
    out = tmp_path / "m"
    r = cli("measure", "-m", "synthetic:tiny", "-t", "1", "-p", "16", "-n", "4", "-r", "2", "--warmup", "0",
            "--idle", "0", "--json", "-o", str(out), env={"ENERGYBENCH_TEST_CRASH": "segv@always"})
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    s = json.loads(r.stdout)
    assert s["n_failed"] == 2 and s["n_ok"] == 0
    runs = read_runs(out)
    assert (runs["status"] == "failed").all()
    assert all("SIGSEGV" in e for e in runs["error"].to_list())


@pytest.mark.parametrize("args,needle", [
    (["--reps", "0"], "command line -r/--reps: repetitions.fixed = 0"),
    (["--threads", "0"], "command line -t/--threads: grid.threads = 0"),
    (["--ubatch", "1024", "--batch", "512"], "command line -ub/--ubatch: grid.ubatch = 1024"),
    (["--ctx", "64", "-p", "60", "-n", "10"], "command line -c/--ctx: grid.n_ctx = 64: too small"),
    (["--flash-attn", "maybe"], "-fa/--flash-attn"),
    (["-p", "100000", "-n", "8"], "synthetic:tiny n_prompt=100000 n_gen=8: prompt (100000 tokens) + generation (8)"),
    (["-m", "synthetic:no-such-shape"], "no-such-shape"),
    (["-m", "/nonexistent/model.gguf"], "model.gguf"),
    (["--prompt", "x", "--prompt-file", "y"], "mutually exclusive"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, cli, args, needle):
    r = cli("measure", "--idle", "0", "-o", str(tmp_path / "m"), *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert needle in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "m").exists() or not list((tmp_path / "m").rglob("*.parquet"))


def test_measure_a_command(cli):
    r = cli("measure", "--idle", "0", "--json", "--", sys_executable(), "-c", "import sys; sys.exit(3)")
    assert r.returncode == 3
    data = json.loads(r.stdout)
    assert data["returncode"] == 3 and data["elapsed_s"] > 0


def sys_executable() -> str:
    import sys

    return sys.executable


def test_version_and_help(cli):
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("energybench ")
    r = cli("--help")
    assert r.returncode == 0
    for cmd in ("fetch", "measure", "sweep", "report", "meters", "config", "doctor"):
        assert cmd in r.stdout
    r = cli("no-such-command")
    assert r.returncode == 2 and "Traceback" not in r.stderr
