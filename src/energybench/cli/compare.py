"""``energybench compare``: NEW result sets against BASE, with verdicts a CI job can act on."""

from __future__ import annotations

import os
import sys

import typer

from energybench import defaults
from energybench.cli.app import app, print_json, warn
from energybench.errors import UsageError
from energybench.report.stats import DEFAULT_N_BOOT

FORMATS = ("text", "markdown", "json")


@app.command("compare")
def compare_cmd(
    base: str = typer.Argument(..., metavar="BASE", help="BASE results directory or s3:// URL (the reference; a "
                                                         "glob of the shards of one sweep is one set)."),
    new: list[str] = typer.Argument(..., metavar="NEW", help="NEW results directories, s3:// URLs or globs, each "
                                                             "compared with BASE (the shards of one sweep: merged)."),
    metric: list[str] = typer.Option([], "--metric", help="Metric to compare (repeatable; names of `energybench "
                                     "report`'s glossary) [default: " + ", ".join(defaults.COMPARE_METRICS) + "]."),
    fail_on_regression: float | None = typer.Option(None, "--fail-on-regression", metavar="PCT",
                                                    help="Exit 1 when a configuration is worse by more than PCT % "
                                                         "and the CI of the change excludes no change."),
    fmt: str = typer.Option(defaults.COMPARE_FORMAT, "--format", help="text, markdown or json."),
    allow_different_machines: bool = typer.Option(False, "--allow-different-machines",
                                                  help="Compare sets of different CPUs, GPUs, llama.cpp builds or "
                                                       "model files (refused otherwise)."),
    ignore_knob: list[str] = typer.Option([], "--ignore-knob", help="Pair configurations that differ only in this "
                                          "knob, e.g. n_threads (repeatable)."),
    price_per_kwh: float | None = typer.Option(None, "--price-per-kwh", help="Electricity price per kWh: adds "
                                               "the cost per 1M output tokens."),
    carbon_intensity: float | None = typer.Option(None, "--carbon-intensity", metavar="G",
                                                  help="Grid carbon intensity in gCO2e/kWh: adds CO2e per 1M "
                                                       "output tokens."),
    region: str | None = typer.Option(None, "--region", help="Grid carbon intensity of a region (US, DE, FR, "
                                      "WORLD ...: annual averages shipped with energybench)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    bootstrap: int = typer.Option(DEFAULT_N_BOOT, "--bootstrap", help="Bootstrap resamples per CI."),
) -> None:
    """Compare NEW result sets with BASE: ratio, CI and verdict per configuration and metric.

    Exit codes: 0 compared (no regression beyond --fail-on-regression); 1 a regression beyond it;
    2 bad usage, or sets of different machines without --allow-different-machines.
    """
    from energybench.compare import compare_results, comparison_dict
    from energybench.compare_render import render_markdown, render_text
    from energybench.cost import resolve_tariff

    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    if fail_on_regression is not None and not fail_on_regression >= 0:
        raise UsageError(f"--fail-on-regression {fail_on_regression}: must be a percentage >= 0")
    tariff = resolve_tariff(price_per_kwh, carbon_intensity, region)
    result = compare_results(base, new, metrics=metric or defaults.COMPARE_METRICS, ignore_knobs=ignore_knob,
                             allow_different_machines=allow_different_machines, tariff=tariff, n_boot=bootstrap,
                             seed=seed)
    if fmt == "json":
        print_json(comparison_dict(result, fail_on_regression))
    else:
        render = render_markdown if fmt == "markdown" else render_text
        sys.stdout.write(render(result, fail_on_regression))
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            with open(summary, "a", encoding="utf-8") as f:
                f.write(render_markdown(result, fail_on_regression) + "\n")
        except OSError as exc:
            warn(f"GITHUB_STEP_SUMMARY {summary!r}: cannot append the table ({exc.strerror})")
    if fail_on_regression is not None and result.regressions(fail_on_regression):
        raise typer.Exit(1)
