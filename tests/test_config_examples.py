"""The shipped examples: every YAML validates, the designs match the study, the pipeline scripts
are valid shell/PowerShell and run their steps in order, stopping at the first failure."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from energybench.config import load_config
from energybench.grid import expand, group_by_load
from energybench.plan import summarize

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
YAMLS = sorted(EXAMPLES.glob("*.yaml"))


def test_examples_exist() -> None:
    names = {p.name for p in EXAMPLES.iterdir()}
    assert {"quick.yaml", "p1_baseline.yaml", "p2_ablation.yaml", "run_pipeline.sh", "run_pipeline.ps1"} <= names


@pytest.mark.parametrize("path", YAMLS, ids=[p.name for p in YAMLS])
def test_example_validates(path: Path) -> None:
    c = load_config(path)
    points = expand(c)
    assert points and len({p.point_id for p in points}) == len(points)


def test_quick_is_quick() -> None:
    c = load_config(EXAMPLES / "quick.yaml")
    assert c.models == ["synthetic:tiny"]
    s = summarize(c)
    assert s.n_points <= 8 and s.runs_max <= 32
    assert c.grid.prompt.n_prompt == [64] and c.grid.n_gen == [32]
    assert c.warmup == 1 and c.repetitions.fixed == 5
    assert c.cooldown.fixed_s is not None and c.cooldown.fixed_s <= 2
    assert 0 < c.idle_baseline_s <= 5
    # cooldowns + idle + minimum windows leave room for the model load in about a minute
    assert c.min_window_s >= 0.5
    assert s.est_min_duration_s <= 55


def test_p1_is_the_study_baseline() -> None:
    c = load_config(EXAMPLES / "p1_baseline.yaml")
    assert c.models == ["synthetic:tinyllama-1.1b:Q4_0"]
    assert c.grid.threads == [1, 4, 8] and c.grid.n_gpu_layers == [0] and c.grid.batch == [128, 512, 1024]
    assert c.grid.prompt.suites == ["short_dialogue", "analytical_reasoning", "narrative_generation"]
    assert (c.repetitions.fixed or c.repetitions.adaptive.min) >= 10 and c.idle_baseline_s > 0 and c.cooldown.until_idle is not None
    assert "tinyllama-1.1b-chat:Q4_0" in (EXAMPLES / "p1_baseline.yaml").read_text()  # says how to use the real one


def test_p2_is_the_study_ablation() -> None:
    c = load_config(EXAMPLES / "p2_ablation.yaml")
    assert c.models == ["synthetic:tinyllama-1.1b:Q4_0"]
    # 0/11/22 of 22 layers as in the study, plus 23 = every layer and the output layer
    assert c.grid.threads == [1, 4, 8] and c.grid.n_gpu_layers == [0, 11, 22, 23] and c.grid.batch == [128, 512, 1024]
    assert set(c.grid.prompt.suites or []) == {"short_dialogue", "analytical_reasoning", "narrative_generation"}
    assert len(group_by_load(expand(c))) == 4  # one load group per GPU-layer setting
    assert c.repetitions.adaptive is not None and c.repetitions.adaptive.metric == "j_per_output_token"
    assert "tinyllama-1.1b-chat:Q4_0" in (EXAMPLES / "p2_ablation.yaml").read_text()


# ----------------------------------------------------------------------------- shell pipeline

SH = EXAMPLES / "run_pipeline.sh"


@pytest.mark.parametrize("shell", ["sh", "bash", "dash"])
def test_pipeline_sh_syntax(shell: str) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} not installed")
    res = subprocess.run([shell, "-n", str(SH)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr


def test_pipeline_sh_is_strict() -> None:
    text = SH.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert re.search(r"^set -eu$", text, re.M)


def fake_energybench(tmp_path: Path) -> Path:
    """An `energybench` that logs each call and runs the real `config` command (the sweep and
    report steps are logged only: they are tested elsewhere). FAIL_AT=word makes the first
    call whose first argument is `word` exit 3."""
    log = tmp_path / "calls.log"
    script = tmp_path / "energybench"
    script.write_text(f"""#!/bin/sh
echo "$*" >> '{log}'
if [ "${{FAIL_AT:-}}" = "$1" ]; then exit 3; fi
if [ "$1" = config ]; then exec '{sys.executable}' -m energybench "$@"; fi
if [ "$1" = sweep ] && [ "$2" = --config ]; then mkdir -p "$5" && echo '{{}}' > "$5/metadata.json"; fi
exit 0
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def run_pipeline(tmp_path: Path, out: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "ENERGYBENCH": str(fake_energybench(tmp_path)), **env}
    return subprocess.run(["sh", str(SH), str(out)], capture_output=True, text=True, env=full, timeout=300)


def calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "calls.log").read_text().splitlines()


def test_pipeline_runs_every_step_in_order(tmp_path: Path) -> None:
    out = tmp_path / "out dir"  # a space in the path must survive quoting
    res = run_pipeline(tmp_path, out)
    assert res.returncode == 0, res.stderr
    p1, p2 = EXAMPLES / "p1_baseline.yaml", EXAMPLES / "p2_ablation.yaml"
    assert calls(tmp_path) == [
        "fetch --synthetic tinyllama-1.1b --quant Q4_0",
        f"config validate {p1}",
        f"sweep --config {p1} --out {out}/p1_baseline",
        f"config validate {p2}",
        f"sweep --config {p2} --out {out}/p2_ablation",
        f"report {out}/p1_baseline -o {out}/report_p1",
        f"report {out}/p2_ablation -o {out}/report_p2",
    ]


def test_pipeline_resumes_and_can_skip_ablation(tmp_path: Path) -> None:
    out = tmp_path / "o"
    assert run_pipeline(tmp_path, out, SKIP_ABLATION="1").returncode == 0
    (tmp_path / "calls.log").unlink()
    res = run_pipeline(tmp_path, out, SKIP_ABLATION="1", FETCH_ARGS="tinyllama-1.1b-chat:Q4_0")
    assert res.returncode == 0, res.stderr
    assert calls(tmp_path) == [
        "fetch tinyllama-1.1b-chat:Q4_0",
        f"config validate {EXAMPLES / 'p1_baseline.yaml'}",
        f"sweep --resume {out}/p1_baseline",
        f"report {out}/p1_baseline -o {out}/report_p1",
    ]


def test_pipeline_stops_at_first_failure(tmp_path: Path) -> None:
    res = run_pipeline(tmp_path, tmp_path / "o", FAIL_AT="sweep")
    assert res.returncode == 3
    log = calls(tmp_path)
    assert log[-1].startswith("sweep --config") and not any(c.startswith("report") for c in log)


def test_pipeline_stops_on_invalid_config(tmp_path: Path) -> None:
    bad = REPO / "tests" / "data" / "configs" / "bad_unknown_order.yaml"
    res = run_pipeline(tmp_path, tmp_path / "o", P1_CONFIG=str(bad))
    assert res.returncode == 2
    assert "order = 'random'" in res.stderr
    assert not any(c.startswith("sweep") for c in calls(tmp_path))


# ----------------------------------------------------------------------------- PowerShell pipeline

PS1 = EXAMPLES / "run_pipeline.ps1"


def test_pipeline_ps1_static() -> None:
    text = PS1.read_text()
    assert "$ErrorActionPreference = 'Stop'" in text
    assert "$LASTEXITCODE" in text
    for step in ("'fetch'", "'sweep'", "'report'", "'--config'", "'--out'", "'--resume'", "'-o'"):
        assert step in text
    # balanced brackets outside strings and comments (a cheap syntax check where pwsh is absent)
    body = re.sub(r"<#.*?#>", "", text, flags=re.S)
    body = re.sub(r"'[^']*'|\"[^\"]*\"", "''", body)
    body = re.sub(r"#.*", "", body)
    for open_, close in ("()", "{}", "[]"):
        assert body.count(open_) == body.count(close), open_


def test_pipeline_ps1_parses_in_pwsh() -> None:
    pwsh = shutil.which("pwsh") or shutil.which("powershell")
    if pwsh is None:
        pytest.skip("PowerShell not installed")
    cmd = ("$e = $null; [System.Management.Automation.Language.Parser]::ParseFile("
           f"'{PS1}', [ref]$null, [ref]$e) | Out-Null; if ($e.Count) {{ $e; exit 1 }}")
    res = subprocess.run([pwsh, "-NoProfile", "-Command", cmd], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
