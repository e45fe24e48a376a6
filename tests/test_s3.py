"""Results on object storage, against a real S3 API on 127.0.0.1 (moto's server mode, a dev
dependency): ``sweep --out s3://`` uploads each finished run, ``report``/``compare`` read the bucket
through polars, ``--resume s3://`` continues after a kill -9 without measuring a run twice, a
staged run that never reached the bucket is sent by the next resume, and the credentials (from the
standard AWS_* variables only) appear in no result, object, report or log."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import polars as pl
import pytest

from conftest import run_cli

pytestmark = pytest.mark.slow
SECRET = "eb-test-secret-" + secrets.token_hex(12)
BUCKET = "energybench-results"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on 127.0.0.1, a bucket in it, and the AWS_* environment that reaches it."""
    pytest.importorskip("moto.server", reason="moto[server] is a dev dependency (pyproject [dependency-groups])")
    boto3 = pytest.importorskip("boto3")
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"moto server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
    env = {"AWS_ACCESS_KEY_ID": "eb-test-key", "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": "us-east-1",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true"}
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="eb-test-key",
                          aws_secret_access_key=SECRET)
    client.create_bucket(Bucket=BUCKET)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # for the in-process tests: polars reads the same variables
    yield env, client
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=10)


def _keys(client, prefix: str) -> list[str]:
    out = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"].removeprefix(prefix) for o in out)


def _sweep(env, out: str, *extra: str, threads: str = "1,2"):
    return run_cli("sweep", "-m", "synthetic:tiny", "-t", threads, "-p", "16", "-n", "8", "-r", "3", "--warmup", "1",
                   "--idle", "0.3", "--cooldown", "0", "--meter", "estimate", "--cpu-tdp-w", "6", "-q", "-o", out,
                   *extra, env=env)


def _assert_no_secret(*texts: str | bytes) -> None:
    for t in texts:
        assert (SECRET.encode() if isinstance(t, bytes) else SECRET) not in t


def test_sweep_uploads_each_run_and_report_and_compare_read_the_bucket(s3, tiny_model, tmp_path, eb_home):
    env, client = s3
    logs = []
    for name in ("a", "b"):
        r = _sweep(env, f"s3://{BUCKET}/study/{name}")
        assert r.returncode == 0, r.stderr
        logs += [r.stdout, r.stderr]
    keys = _keys(client, "study/a/")
    parts = [k for k in keys if k.startswith("parts/runs-")]
    assert {"metadata.json", "journal.jsonl", "runs.parquet", "samples.parquet", "parts/samples-idle-0.parquet"} \
        <= set(keys)
    assert len(parts) == 8  # 2 points x (1 warm-up + 3 repetitions), each uploaded when it finished
    meta = json.loads(client.get_object(Bucket=BUCKET, Key="study/a/metadata.json")["Body"].read())
    assert meta["status"] == "finished" and meta["n_runs_ok"] == 8
    assert not list((eb_home / "staging").glob("*/metadata.json"))  # the staging copies are gone
    out = tmp_path / "rep"
    r = run_cli("report", f"s3://{BUCKET}/study/a", "--format", "json", "-o", str(out), "--export", "csv", env=env)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["sets"][0]["runs"] == 8 and summary["sets"][0]["root"] == f"s3://{BUCKET}/study/a"
    assert "power_timeline" in summary["figures"]  # samples of single runs read from the bucket
    assert not (out / "figures" / ".drawn-from.json").exists()  # no figure reuse for a URL
    samples = pl.read_csv(out / "tables" / "power_samples.csv")
    assert samples.height > 0 and set(samples["run_id"]) >= {"idle-0"}
    logs += [r.stdout, r.stderr]
    r = run_cli("report", f"s3://{BUCKET}/study/*", "--no-figures", "--format", "json", "-o", str(tmp_path / "r2"),
                env=env)
    assert r.returncode == 0, r.stderr
    assert [s["label"] for s in json.loads(r.stdout)["sets"]] == ["a", "b"]
    r = run_cli("compare", f"s3://{BUCKET}/study/a", f"s3://{BUCKET}/study/b", "--format", "json", env=env)
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["sets"][0]["pairs"]) == 2
    logs += [r.stdout, r.stderr]
    objects = [client.get_object(Bucket=BUCKET, Key=f"study/a/{k}")["Body"].read() for k in keys]
    _assert_no_secret(*logs, *objects, *(p.read_bytes() for p in out.rglob("*") if p.is_file()))


def test_resume_from_the_bucket_after_kill_9_measures_each_run_once(s3, tiny_model, tmp_path):
    env, client = s3
    url = f"s3://{BUCKET}/killed"
    args = [sys.executable, "-m", "energybench", "sweep", "-m", "synthetic:tiny", "-t", "1,2", "-b", "16,32",
            "-p", "16", "-n", "8", "-r", "4", "--warmup", "0", "--idle", "0.2", "--cooldown", "0", "--min-window", "0.3",
            "--meter", "estimate", "--cpu-tdp-w", "6", "-q", "-o", url]
    proc = subprocess.Popen(args, env=dict(os.environ, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    while len([k for k in _keys(client, "killed/") if k.startswith("parts/runs-")]) < 3:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its worker, mid-run
    proc.wait()
    before = pl.read_parquet(f"{url}/parts/runs-*.parquet")
    r = run_cli("sweep", "--resume", url, "--json", "-q", env=env)
    assert r.returncode == 0, r.stderr
    done = json.loads(r.stdout)
    runs = pl.read_parquet(f"{url}/runs.parquet")
    assert runs.height == 16 and runs["run_id"].n_unique() == 16 and (runs["status"] == "ok").all()
    assert done["n_runs_this_session"] <= 16 - before.height
    kept = runs.join(before.select("run_id", "started_at"), on="run_id")
    assert kept.height == before.height and (kept["started_at"] == kept["started_at_right"]).all()  # not re-run
    meta = json.loads(client.get_object(Bucket=BUCKET, Key="killed/metadata.json")["Body"].read())
    assert meta["status"] == "finished" and len(meta["resumes"]) == 1


def test_a_staged_run_that_never_reached_the_bucket_is_sent_by_the_resume(s3, tmp_path):
    from energybench.config import parse_config
    from energybench.engine import remote_dir
    from energybench.plan import plan_from_config
    from energybench.results import ResultsStore, read_runs

    _, client = s3
    plan = plan_from_config(parse_config({"name": "x", "models": ["synthetic:tiny"]}))
    url = f"s3://{BUCKET}/staged"
    store = remote_dir.open_new(url)
    store.create({"config": plan.config, "config_hash": plan.config_hash, "sweep_id": plan.config_hash})
    row = {"point_id": "p", "status": "ok", "is_warmup": False, "n_gen_tokens": 8, "window_s": 0.1}
    store.add_run({**row, "run_id": "p-r000"})  # uploaded when durable
    ResultsStore(store.root).add_run({**row, "run_id": "p-r001"})  # durable here; killed before the upload
    assert _keys(client, "staged/parts/") == ["runs-p-r000.parquet"]
    again, _, done = remote_dir.open_resume(url, plan, force=False)
    assert done == {"p-r000", "p-r001"} and again.location == url
    assert _keys(client, "staged/parts/") == ["runs-p-r000.parquet", "runs-p-r001.parquet"]
    assert sorted(read_runs(url)["run_id"].to_list()) == ["p-r000", "p-r001"]


def test_text_objects_round_trip_byte_for_byte(s3):
    from energybench.storage import read_text, write_text

    _, client = s3
    text = json.dumps({"a": "quote \" comma , tab \t", "b": [1, 2.5, None], "c": "line\nbreak"}, indent=2) + "\n"
    write_text(text, f"s3://{BUCKET}/text/metadata.json")
    assert client.get_object(Bucket=BUCKET, Key="text/metadata.json")["Body"].read() == text.encode()
    assert read_text(f"s3://{BUCKET}/text/metadata.json") == text.rstrip("\n")
    assert read_text(f"s3://{BUCKET}/text/absent.json") is None


def test_refusals_and_errors_are_one_line_without_the_secret(s3, tiny_model, tmp_path):
    env, _ = s3
    r = _sweep(env, f"s3://{BUCKET}/study/a")  # written by the first test, or by this call
    if r.returncode == 0:
        r = _sweep(env, f"s3://{BUCKET}/study/a")
    assert r.returncode == 2 and "already holds results" in r.stderr and "--resume" in r.stderr
    r = run_cli("report", "s3://no-such-bucket/x", "--no-figures", env=env)
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    _assert_no_secret(r.stdout, r.stderr)
    r = run_cli("report", f"s3://{BUCKET}/nothing-here/*", "--no-figures", env=env)
    assert r.returncode == 2 and "matches no results directory" in r.stderr
    r = run_cli("report", f"s3://{BUCKET}/study/a", "--serve", env=env)
    assert r.returncode == 2 and "--serve watches local directories" in r.stderr
