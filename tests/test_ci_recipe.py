"""The CI recipe ``examples/ci/energy-regression.yml``, its commands run as a script.

Its ``run:`` steps execute as GitHub runs them (``bash --noprofile --norc -eo pipefail``, the job's
env, ``GITHUB_OUTPUT``/``GITHUB_STEP_SUMMARY`` files, ``if:`` conditions on earlier outputs), on a
real sweep of the tiny twin. The one thing that cannot run here is GitHub's API: ``gh`` is a
stand-in on PATH that lists a run id and "downloads" a prepared artifact (and records its
arguments). The install step (``uv sync``) is not run: this checkout's environment stands in for it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / "examples" / "ci" / "energy-regression.yml"

#: The expressions the recipe's env may use, with the values a pull request run would give them.
EXPRESSIONS = {
    "inputs.fail-on-regression || '10'": "10",
    "github.event.repository.default_branch": "main",
    "github.token": "token-not-used",
    "github.repository": "octo/energy",
}
#: The ``if:`` conditions of run steps, evaluated on the outputs of earlier steps.
CONDITIONS = {"steps.baseline.outputs.found == 'true'": lambda out: out.get("baseline", {}).get("found") == "true"}

FAKE_GH = """#!{python}
import json, os, shutil, sys
from pathlib import Path
with open(os.environ["FAKE_GH_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
if args[:2] == ["run", "list"]:
    print(os.environ.get("FAKE_GH_RUN_ID", ""))
elif args[:2] == ["run", "download"]:
    src = Path(os.environ["FAKE_GH_ARTIFACTS"]) / args[2] / args[args.index("--name") + 1]
    if not src.is_dir():
        sys.exit("no valid artifacts found to download")
    shutil.copytree(src, args[args.index("--dir") + 1])
else:
    sys.exit("unexpected gh call")
"""


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _env(job: dict) -> dict[str, str]:
    out = {}
    for k, v in job["env"].items():
        for expr in re.findall(r"\$\{\{\s*(.*?)\s*\}\}", str(v)):
            assert expr in EXPRESSIONS, f"the test does not know ${{{{ {expr} }}}}: add it to EXPRESSIONS"
            v = str(v).replace(f"${{{{ {expr} }}}}", EXPRESSIONS[expr])
        out[k] = str(v)
    return out


def _outputs(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines() if path.exists() else []
    return dict(line.split("=", 1) for line in lines if "=" in line)


def run_steps(ws: Path, ids: list[str], extra_env: dict[str, str], tmp: Path) -> dict[str, int | None]:
    """Run the recipe's run-steps ``ids`` in workspace ``ws``, as GitHub would: returns each step's
    exit status (None: skipped by its ``if:``); stops at the first failing step, as a job does."""
    job = _workflow()["jobs"]["energy"]
    steps = {s["id"]: s for s in job["steps"] if "id" in s}
    env = {**os.environ, **_env(job), **extra_env, "GITHUB_WORKSPACE": str(ws),
           "GITHUB_STEP_SUMMARY": str(tmp / "summary.md"), "COLUMNS": "200",
           "PATH": f"{tmp / 'bin'}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    outputs: dict[str, dict[str, str]] = {}
    status: dict[str, int | None] = {}
    for sid in ids:
        step = steps[sid]
        if "if" in step:
            assert step["if"] in CONDITIONS, f"the test does not know the condition {step['if']!r}"
            if not CONDITIONS[step["if"]](outputs):
                status[sid] = None
                continue
        script, out = tmp / f"{sid}.sh", tmp / f"{sid}.out"
        script.write_text(step["run"])
        out.unlink(missing_ok=True)
        r = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=ws,
                           env={**env, "GITHUB_OUTPUT": str(out)}, capture_output=True, text=True, timeout=600)
        (tmp / f"{sid}.log").write_text(r.stdout + r.stderr)
        outputs[sid], status[sid] = _outputs(out), r.returncode
        if r.returncode:
            break
    return status


@pytest.fixture(scope="module")
def swept(tmp_path_factory, tiny_model) -> Path:
    """A workspace after the recipe's sweep step: a real sweep of the tiny twin."""
    ws = tmp_path_factory.mktemp("ws")
    tmp = tmp_path_factory.mktemp("runner")
    (tmp / "bin").mkdir()
    status = run_steps(ws, ["sweep"], {}, tmp)
    assert status == {"sweep": 0}, (tmp / "sweep.log").read_text()
    return ws


@pytest.fixture
def runner(tmp_path, swept) -> tuple[Path, Path]:
    """(workspace holding the swept results, runner temp dir with the fake gh on PATH)."""
    ws = tmp_path / "ws"
    shutil.copytree(swept, ws)
    (tmp_path / "bin").mkdir()
    gh = tmp_path / "bin" / "gh"
    gh.write_text(FAKE_GH.format(python=sys.executable))
    gh.chmod(gh.stat().st_mode | stat.S_IEXEC)
    return ws, tmp_path


def _gh_env(tmp: Path, run_id: str) -> dict[str, str]:
    return {"FAKE_GH_LOG": str(tmp / "gh.log"), "FAKE_GH_RUN_ID": run_id, "FAKE_GH_ARTIFACTS": str(tmp / "artifacts")}


def _artifact(tmp: Path, results: Path, run_id: str) -> Path:
    dest = tmp / "artifacts" / run_id / "energy-baseline"
    shutil.copytree(results, dest)
    return dest


def test_the_recipe_is_a_github_workflow_with_the_steps_the_test_runs():
    wf = _workflow()
    assert set(wf[True]) == {"push", "pull_request", "workflow_dispatch"}  # YAML 1.1 reads `on` as True
    job = wf["jobs"]["energy"]
    ids = [s.get("id") for s in job["steps"]]
    assert ids.index("sweep") < ids.index("baseline") < ids.index("compare")
    install = next(s for s in job["steps"] if s.get("id") == "install")
    assert '"$PWD/.venv/bin" >> "$GITHUB_PATH"' in install["run"]  # what PATH stands in for here
    uploads = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert {u["with"]["name"] for u in uploads} == {"energy-report", job["env"]["EB_BASELINE_ARTIFACT"]}
    assert wf["permissions"]["actions"] == "read"


@pytest.mark.slow
def test_an_unchanged_build_passes_the_gate(runner):
    ws, tmp = runner
    _artifact(tmp, ws / "results" / "new", "4242")  # the default branch measured the same
    status = run_steps(ws, ["baseline", "compare"], _gh_env(tmp, "4242"), tmp)
    assert status == {"baseline": 0, "compare": 0}, (tmp / "compare.log").read_text()
    report = (ws / "energy-report.md").read_text()
    assert "| configuration | workload | metric |" in report and "regression gate (10 %): passed" in report
    assert "regression gate (10 %): passed" in (tmp / "summary.md").read_text()
    calls = [json.loads(line) for line in (tmp / "gh.log").read_text().splitlines()]
    assert calls[0][:2] == ["run", "list"] and calls[0][calls[0].index("--branch") + 1] == "main"
    assert calls[0][calls[0].index("--workflow") + 1] == WORKFLOW.name
    assert calls[1][:3] == ["run", "download", "4242"]


@pytest.mark.slow
def test_a_regression_fails_the_job(runner):
    ws, tmp = runner
    base = _artifact(tmp, ws / "results" / "new", "4243")
    # the default branch decoded twice as fast as the fastest run here, with half the energy
    runs = pl.read_parquet(base / "runs.parquet")
    ok = (pl.col("status") == "ok") & ~pl.col("is_warmup")
    half_s = ((pl.col("t_end_ns") - pl.col("t_prefill_end_ns")).filter(ok).min() // 2)
    runs = runs.with_columns(t_end_ns=pl.col("t_prefill_end_ns") + half_s,
                             decode_energy_j=pl.col("decode_energy_j").filter(ok).min() / 2)
    runs.write_parquet(base / "runs.parquet")
    status = run_steps(ws, ["baseline", "compare"], _gh_env(tmp, "4243"), tmp)
    assert status == {"baseline": 0, "compare": 1}
    report = (ws / "energy-report.md").read_text()
    assert "regression gate (10 %): FAILED" in report and "decode speed" in report


@pytest.mark.slow
def test_without_a_baseline_nothing_is_compared(runner):
    ws, tmp = runner
    status = run_steps(ws, ["baseline", "compare"], _gh_env(tmp, ""), tmp)
    assert status == {"baseline": 0, "compare": None}
    assert "No energy baseline" in (tmp / "summary.md").read_text()
    assert not (ws / "energy-report.md").exists()


def test_the_recipe_validates_against_the_github_workflow_schema():
    """check-jsonschema's vendored GitHub workflow schema (a dev tool; skipped where not installed)."""
    cj = shutil.which("check-jsonschema") or shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    if cj is None:
        pytest.skip("check-jsonschema is not installed")
    r = subprocess.run([cj, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr
