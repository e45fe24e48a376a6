"""Machines as a dimension: the same configurations on several kinds of machine in ``report`` and
``compare`` (table, figure, JSON), which machine is lowest and whether beyond noise, configurations
matched across machines whose model paths differ, and the caveat when the meters differ."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest

from energybench.report.build import build_report, load_sets
from handmade_results import metadata, write_set

RAPL_DOMAINS = [{"name": "cpu-package-0", "component": "cpu", "meter": "rapl", "parent": None},
                {"name": "dram-0", "component": "dram", "meter": "rapl", "parent": None},
                {"name": "cpu-core-0", "component": "cpu-core", "meter": "rapl", "parent": "cpu-package-0"}]
PACKAGE_ONLY = [{"name": "Processor", "component": "cpu", "meter": "powergadget", "parent": None}]


def _machine(root: Path, cpu: str, *, meter: str = "rapl", domains=RAPL_DOMAINS, memory_gib: int = 16,
             threads=(1, 2), **effects) -> Path:
    meta = metadata(cpu=cpu, meter=meter, domains=domains, status="finished")
    meta["host"] |= {"cpu_logical": 8, "memory_total_bytes": memory_gib * 2**30, "os": "Linux", "os_release": "6.8"}
    return write_set(root, threads=threads, meta=meta, **effects)


def _move_model(root: Path, path: str) -> None:
    """The model under another path (its point ids change with it), as on another machine."""
    runs = pl.read_parquet(root / "runs.parquet")
    runs.with_columns(model=pl.lit(path), point_id=pl.col("point_id") + "x",
                      run_id=pl.col("run_id") + "x").write_parquet(root / "runs.parquet")


def test_report_finds_the_lowest_machine_per_configuration(tmp_path):
    a = _machine(tmp_path / "desk", "Desk CPU 1")
    b = _machine(tmp_path / "laptop", "Laptop CPU 2", power=0.7, seed=1)  # 30 % less power, same speed
    _move_model(b, "/home/lab/models/tiny.gguf")
    c = _machine(tmp_path / "cloud", "Cloud CPU 3", meter="estimate", energy_source="estimate", power=1.3, seed=2,
                 threads=(1,))
    s = build_report([a, b, c], tmp_path / "rep", n_boot=400)
    m = s.analysis.machines
    assert set(m.machines) == {"desk", "laptop", "cloud"} and "Laptop CPU 2 · 8 CPUs · 16 GiB" in m.machines["laptop"]
    assert len(m.rows) == 2  # threads 1 on three machines, threads 2 on two (cloud has no threads=2)
    one = next(r for r in m.rows if len(r.values) == 3)
    assert [v.set for v in one.values][0] == "laptop"
    assert one.vs_next.verdict == "worse" and one.vs_next.ratio_lo > 1.2  # the runner-up is clearly higher
    assert one.values[2].estimate and "cloud is an estimate" in one.caveats[0]
    two = next(r for r in m.rows if len(r.values) == 2)
    assert two.caveats == ()  # desk and laptop: the same meter and components
    doc = json.loads(s.files["json"].read_text())["machines"]
    assert [c["lowest"] for c in doc["configurations"]] == ["laptop", "laptop"]
    md = s.files["md"].read_text()
    assert "## Machines: the same configurations on each machine" in md and "lowest (beyond noise)" in md
    assert "measured and estimated energy side by side" in md
    assert "machines" in s.figures
    svg = (tmp_path / "rep" / "figures" / "machines.svg").read_text()
    diamonds = {p for p in re.findall(r'<polygon points="[^"]+" fill="(#[0-9a-f]{6})"', svg) if p != "#555555"}
    laptop = re.search(r'fill="(#[0-9a-f]{6})"/><text [^>]*>laptop</text>', svg).group(1)  # its legend key
    assert svg.count("<polygon") == 3 and diamonds == {laptop}  # each configuration's diamond: the laptop
    assert 'id="machines"' in s.files["html"].read_text()


def test_one_kind_of_machine_has_no_machine_section(tmp_path):
    a = _machine(tmp_path / "a", "Same CPU")
    b = _machine(tmp_path / "b", "Same CPU", decode=1.1, seed=3)  # another build, say: one machine
    s = build_report([a, b], tmp_path / "rep", n_boot=300, figures=False)
    assert s.analysis.machines is None and s.summary["machines"] is None
    assert "## Machines" not in s.files["md"].read_text()


def test_different_meters_and_components_are_the_caveat(tmp_path):
    lin = _machine(tmp_path / "linux", "Core i5-13600K")
    win = _machine(tmp_path / "windows", "Core i5-13400F", meter="powergadget", domains=PACKAGE_ONLY)
    from energybench.crossmachine import cross_machine

    m = cross_machine(load_sets([lin, win]), n_boot=200)
    caveats = m.rows[0].caveats
    assert caveats == ("meters differ: linux rapl, windows powergadget",
                       "energy totals count different components: linux cpu+dram, windows cpu")
    assert m.rows[0].vs_next.verdict == "within noise"  # same powers: no machine is lower beyond noise


def test_compare_across_machines_shows_the_same_configurations(tmp_path, cli):
    a = _machine(tmp_path / "desk", "Desk CPU 1")
    b = _machine(tmp_path / "laptop", "Laptop CPU 2", power=0.7, seed=1)
    r = cli("compare", str(a), str(b))
    assert r.returncode == 2 and "CPU: Desk CPU 1 (BASE) vs Laptop CPU 2 (NEW)" in r.stderr
    r = cli("compare", str(a), str(b), "--allow-different-machines")
    assert r.returncode == 0, r.stderr
    assert "across machines, lowest energy per output token first" in r.stdout
    lowest = [line for line in r.stdout.split("across machines")[1].splitlines() if "lowest (" in line]
    assert len(lowest) == 2 and all("laptop" in x and "lowest (beyond noise)" in x for x in lowest)
    assert "threads=1 " in lowest[0] and "threads_batch" not in lowest[0]  # a follower knob is not shown
    r = cli("compare", str(a), str(b), "--allow-different-machines", "--format", "json")
    doc = json.loads(r.stdout)["machines"]
    assert {c["lowest"] for c in doc["configurations"]} == {"laptop"}
    assert doc["configurations"][0]["runner_up_vs_lowest"]["ratio"] == pytest.approx(1 / 0.7, rel=0.08)
