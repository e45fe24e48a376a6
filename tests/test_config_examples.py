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
from energybench.grid import configuration_ids, expand, group_by_load
from energybench.plan import summarize

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
YAMLS = sorted(EXAMPLES.glob("*.yaml"))


def test_examples_exist() -> None:
    names = {p.name for p in EXAMPLES.iterdir()}
    assert {"quick.yaml", "p1_baseline.yaml", "p2_ablation.yaml", "seed_p1.yaml", "seed_p2.yaml", "run_pipeline.sh",
            "run_pipeline.ps1"} <= names


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


def test_seed_p1_is_the_study_p1() -> None:
    """Per suite, CPU against the GPU with every layer offloaded, 256 generated tokens."""
    c = load_config(EXAMPLES / "seed_p1.yaml")
    assert [(g.label, g.n_gpu_layers) for g in c.grids] == [("cpu", [0]), ("gpu", [-1])]
    assert all(g.n_gen == [256] for g in c.grids)
    assert all(g.prompt.suites == ["short_dialogue", "analytical_reasoning", "narrative_generation"] for g in c.grids)
    assert sorted(set(configuration_ids(c).values())) == ["cpu", "gpu"]
    assert c.repetitions.fixed >= 10 and c.warmup >= 1 and c.idle_baseline_s > 0


def test_seed_p2_is_the_study_p2() -> None:
    """One factor at a time on the short-dialogue suite, 128 tokens: threads 1/4/8 on the CPU, GPU
    layers 0/11/22, batch 128/512/1024 at 22 layers; batch 128 and 4 threads otherwise (the study's
    table 1); its ids."""
    c = load_config(EXAMPLES / "seed_p2.yaml")
    ids = configuration_ids(c)
    knobs = {ids[p.point_id]: (p.n_threads, p.n_gpu_layers, p.n_batch) for p in expand(c)}
    assert knobs == {"cpu-t1": (1, 0, 128), "cpu-t4": (4, 0, 128), "cpu-t8": (8, 0, 128), "gpu-l11": (4, 11, 128),
                     "gpu-l22": (4, 22, 128), "gpu-b512": (4, 22, 512), "gpu-b1024": (4, 22, 1024)}
    assert {p.prompt.suite for p in expand(c)} == {"short_dialogue"} and {p.n_gen for p in expand(c)} == {128}
    assert "gpu-l0 is cpu-t4" in (EXAMPLES / "seed_p2.yaml").read_text()  # says why 7, not 9


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
        f"report {out}/p1_baseline -o {out}/report_p1 --export csv",
        f"report {out}/p2_ablation -o {out}/report_p2 --export csv",
    ]
    assert f"report {out}/p2_ablation --serve" in res.stderr  # how to open the dashboard


def test_pipeline_cpu_only_and_serve(tmp_path: Path) -> None:
    out = tmp_path / "o"
    res = run_pipeline(tmp_path, out, P1_CONFIG="seed_p1", P2_CONFIG="seed_p2", CPU_ONLY="1", SERVE="1", PORT="9001")
    assert res.returncode == 0, res.stderr
    assert calls(tmp_path) == [
        "fetch --synthetic tinyllama-1.1b --quant Q4_0",
        "config validate seed_p1",
        f"sweep --config seed_p1 --out {out}/p1_baseline --cpu-only",
        "config validate seed_p2",
        f"sweep --config seed_p2 --out {out}/p2_ablation --cpu-only",
        f"report {out}/p1_baseline -o {out}/report_p1 --export csv",
        f"report {out}/p2_ablation -o {out}/report_p2 --export csv",
        f"report {out}/p2_ablation --serve --port 9001",
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
        f"report {out}/p1_baseline -o {out}/report_p1 --export csv",
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
    for step in ("'fetch'", "'sweep'", "'report'", "'--config'", "'--out'", "'--resume'", "'-o'", "'--export', 'csv'",
                 "'--cpu-only'", "'--serve'"):
        assert step in text


def _powershell_parser():
    """tree-sitter with the PowerShell grammar (PyPI: tree-sitter, tree-sitter-powershell; dev dependencies)."""
    try:
        import tree_sitter
        import tree_sitter_powershell
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("tree-sitter-powershell is missing: `uv sync` installs the dev dependencies")
        pytest.skip("tree-sitter / tree-sitter-powershell not installed (uv sync installs the dev dependencies)")
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))


def _errors(node, out: list[str]) -> list[str]:
    if node.is_error or node.is_missing:
        out.append(f"{node.type} at line {node.start_point[0] + 1}: {node.text[:60]!r}")
    for child in node.children:
        _errors(child, out)
    return out


def _commands(node, out: list[str]) -> list[str]:
    """The text of every command the script runs (tree-sitter-powershell ``command`` nodes)."""
    if node.type == "command":
        out.append(node.text.decode())
    for child in node.children:
        _commands(child, out)
    return out


def test_pipeline_ps1_parses_with_the_powershell_grammar() -> None:
    """No PowerShell here: the tree-sitter PowerShell grammar parses the script, without an error
    node, and finds the steps of run_pipeline.sh in it; a broken copy does not parse."""
    parser = _powershell_parser()
    tree = parser.parse(PS1.read_bytes())
    assert _errors(tree.root_node, []) == []
    commands = "\n".join(_commands(tree.root_node, []))
    for step in ("Invoke-Energybench (@('fetch') + $FetchArgs)", "Invoke-Sweep -Config $P1Config -Dir $p1Out",
                 "Invoke-Sweep -Config $P2Config -Dir $p2Out", "'--export', 'csv'", "'--serve', '--port'",
                 "'--config', $Config, '--out', $Dir, '--cpu-only'", "'--resume', $Dir"):
        assert step in commands, step
    broken = PS1.read_text().replace("if ($LASTEXITCODE -ne 0) {", "if ($LASTEXITCODE -ne 0 {", 1)
    assert _errors(parser.parse(broken.encode()).root_node, [])


def test_pipeline_ps1_parses_in_pwsh() -> None:
    pwsh = shutil.which("pwsh") or shutil.which("powershell")
    if pwsh is None:
        pytest.skip("PowerShell not installed")
    cmd = ("$e = $null; [System.Management.Automation.Language.Parser]::ParseFile("
           f"'{PS1}', [ref]$null, [ref]$e) | Out-Null; if ($e.Count) {{ $e; exit 1 }}")
    res = subprocess.run([pwsh, "-NoProfile", "-Command", cmd], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
