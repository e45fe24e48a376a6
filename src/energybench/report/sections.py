"""The words of a report, defined once: section titles, explanations, empty-section texts.

The Markdown (:mod:`.markdown`) and HTML (:mod:`.html`) renderers format what this module says and
write no sentence of their own, so a wording change is made here, once. Prose that carries
formatting is a :data:`Paragraph`: a tuple of plain strings, :class:`Code` and :class:`Sub` pieces
that each renderer spells its own way (backticks or ``<code>``, ``E_active`` or ``E<sub>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from energybench import __version__
from energybench.report.analysis import Analysis
from energybench.report.best import Recommendation, describe_config
from energybench.report.fmt import fmt_ci, fmt_num
from energybench.report.stats import render_warnings
from energybench.report.tables import set_counts


@dataclass(frozen=True)
class Code:
    """A name the reader may type or look for: a file, a metadata key, an option."""

    text: str


@dataclass(frozen=True)
class Sub:
    """A subscript (the ``active`` of E_active)."""

    text: str


Inline = str | Code | Sub
Paragraph = tuple[Inline, ...]


@dataclass(frozen=True)
class Section:
    """One section of the report: its anchor, its navigation label, its heading, and what it says
    when it has nothing to show."""

    id: str
    nav: str
    title: str
    empty: str = ""


TITLE = "energybench report"
SUMMARY = Section("summary", "Summary", "Summary")
RECOMMENDATIONS = Section("recommendations", "Recommendations", "Recommendations",
                          empty="No configuration has finished repetitions yet.")
STUDY = Section("study", "Study tables", "The original study's tables, with confidence intervals",
                empty="No finished repetition yet.")
EXPLORE = Section("explore", "Explore", "Explore: energy vs latency, pick two, details")
PROGRESS = Section("progress", "Progress", "Sweep progress")
FIGURES = Section("figures", "Figures", "Figures",
                  empty="No figure: the data varies no axis a figure needs (or figures were turned off).")
PARETO = Section("pareto", "Pareto", "Pareto front (latency vs energy per output token)")
RACE = Section("race", "Race-to-sleep", "Race-to-sleep")
ROOFLINE = Section("roofline", "Roofline", "Decode roofline")
COMPARE = Section("compare", "Comparison", "Comparison of result sets",
                  empty="No configuration appears in more than one set.")
MACHINES = Section("machines", "Machines", "Machines: the same configurations on each machine",
                   empty="No configuration was measured on two kinds of machine.")
MACHINES_NOTE = ("A kind of machine is its CPU, logical CPUs, memory, OS and GPUs (metadata.json; not the host "
                 "name). A configuration is the same when its model file name and quant, prompt, generation length "
                 "and knobs are. Per machine: median energy per output token [95 % bootstrap CI], lowest first; "
                 "\"vs lowest\" is the ratio of medians, with the CI of the runner-up's ratio, and \"beyond noise\" "
                 "when that CI excludes 1.")
MACHINES_CAVEAT = "Energies of different meters are not alike:"
RESULTS = Section("results-section", "Results", "Results per configuration", empty="No runs yet.")
DOMAINS = Section("domains", "Domains", "Power per domain (recommended configurations)")
PROVENANCE = Section("provenance", "Provenance", "Provenance")
#: The order of the HTML navigation.
NAV = (SUMMARY, PROGRESS, RECOMMENDATIONS, STUDY, EXPLORE, FIGURES, PARETO, RACE, ROOFLINE, COMPARE, MACHINES, RESULTS,
       DOMAINS, PROVENANCE)

#: The study's tables (energybench.report.study): titles and what they say.
STUDY_NOTE: Paragraph = (
    "The tables of the study energybench grew from (per suite x backend, CPU vs GPU, EDP ranking), each mean with "
    "its 95 % bootstrap CI over the runs (warm-ups and failed runs excluded). Latency and energy are one request's; "
    "EDP = energy x latency. Configuration ids as in the study: ", Code("cpu-t4"), ", ", Code("gpu-l11"), ", ",
    Code("gpu-b512"), " name the one setting (t threads, l GPU layers, b batch) in which a configuration differs "
    "from its grid's base; ", Code("cpu.t8.b1024"), " lists several.")
SUITE_TITLE = "Summary per suite and backend"
HEADLINE_TITLE = "CPU vs GPU"
HEADLINE_NOTE = ("Per suite, each side is its configuration with the lowest mean EDP; speed-up = CPU latency / GPU "
                 "latency, energy saved = 1 - GPU energy / CPU energy, EDP ratio = CPU EDP / GPU EDP. "
                 "\"within noise\": the 95 % CI includes no difference.")
HEADLINE_NONE = ("No CPU-vs-GPU headline: these results have no configuration that offloads to a GPU on the same suite "
                 "as a CPU-only one (on a CPU-only build, `sweep --cpu-only` runs the CPU part only).")
RANKING_TITLE = "EDP ranking: configurations over every prompt"
RANKING_NOTE = ("Mean EDP of every run of a configuration (all prompts together), lowest first; \"vs best\" compares "
                "with the first by the 95 % CI of the difference of means.")


WARNING_MARK = "⚠"
WARNINGS_LABEL = "Warnings"
STATISTICS_NOTE = ("Statistics: median of the repetitions with a 95 % percentile-bootstrap CI (seeded); warm-ups "
                   "and failed runs excluded. J/token is gross energy per output token unless marked net "
                   "(idle-subtracted).")
#: Under the interactive (sortable) results table.
RESULTS_HINT = "Click a column header to sort. Green rows are on the Pareto front. Values: median [95 % CI]."
DOMAINS_NOTE: Paragraph = (
    "Nested domains (parent set) are inside their parent and never added to totals. \"system total\" is what the "
    "run attributes to itself: the top-level domains (CPU + DRAM + GPU ...), per phase. All configurations: ",
    Code("tables/domains.csv"), " with --export csv.")
MODELS_TITLE = "Models"
METERS_TITLE = "Meters and domains"


def generated(timestamp: str, sources: str) -> str:
    """The line under the title: when, by which version, from which directories."""
    return f"Generated {timestamp} by energybench {__version__} from {sources}"


def totals(a: Analysis) -> dict[str, int]:
    """Runs, repetitions (``ok``), warm-ups and failed runs over every set."""
    counts = set_counts(a)
    return {k: sum(c[k] for c in counts) for k in ("runs", "ok", "warmups", "failed")}


def summary_line(a: Analysis) -> str:
    """The summary as one sentence."""
    t = totals(a)
    return (f"{t['runs']} runs ({t['ok']} repetitions, {t['warmups']} warm-ups, {t['failed']} failed) over "
            f"{a.cfg.height} configurations and {len(a.workloads)} workload(s)"
            + (f" in {len(a.sets)} result sets" if a.multi_set else ""))


def summary_stats(a: Analysis) -> list[tuple[str, int]]:
    """The summary as (label, count) pairs."""
    t = totals(a)
    return [("runs", t["runs"]), ("repetitions", t["ok"]), ("warm-ups", t["warmups"]), ("failed", t["failed"]),
            ("configurations", a.cfg.height), ("workloads", len(a.workloads))]


@dataclass(frozen=True)
class RecItem:
    """One recommendation, in pieces each renderer lays out."""

    label: str
    config: str
    value: str  # value [CI] unit
    n: str  # n=<repetitions>
    verdict: str
    warnings: list[str]


def recommendation_groups(a: Analysis) -> list[tuple[str, list[RecItem]]]:
    """(heading, items) per workload (and set), workloads in the analysis' order."""
    groups: dict[tuple[str, str], list[Recommendation]] = {}
    for r in a.recommendations:
        groups.setdefault((r.set, r.workload), []).append(r)
    order = {w: i for i, w in enumerate(a.workloads)}
    keys = sorted(groups, key=lambda k: (order.get(k[1], 99), k[0]))
    return [(wl + (f" [{s}]" if a.multi_set else ""), [_rec_item(r) for r in groups[(s, wl)]]) for s, wl in keys]


def _rec_item(r: Recommendation) -> RecItem:
    b = r.best
    return RecItem(label=r.label, config=describe_config(b.config),
                   value=f"{fmt_ci(b.value, b.ci_lo, b.ci_hi)} {r.unit}", n=f"n={b.n_reps}", verdict=r.verdict,
                   warnings=render_warnings(r.warnings, skip_set_wide=True))


def race_paragraph(a: Analysis) -> Paragraph:
    """What race-to-sleep compares, and the window T of each workload."""
    windows = "; ".join(f"{wl}: T = {fmt_num(t)} s" for wl, t in list(a.windows.items())[:8])
    return ("E(T) = E", Sub("active"), " + P", Sub("idle"), " x (T - t", Sub("active"),
            f") over one window T per workload ({a.window_source}): {windows}. Finishing fast and idling can cost "
            "less than running slowly at lower power -- or not; the lowest E(T) is in the recommendations above.")


def roofline_paragraph(a: Analysis) -> Paragraph:
    """What the decode roofline measures, against which bandwidth."""
    bw = "; ".join((f"{k}: " if a.multi_set else "") + f"{fmt_num(v[0])} GB/s, {v[1]}"
                   for k, v in a.bandwidth.items() if v[0])
    return (f"decode tok/s x model bytes (~ bytes read per token) as a fraction of the memory bandwidth ({bw}); "
            "llama.cpp typically reaches 50-80 % on CPUs. CPU-only configurations.",)


def roofline_unavailable(a: Analysis) -> Paragraph:
    """Why the decode roofline cannot be shown."""
    if all(v[0] is None for v in a.bandwidth.values()):
        return ("Not available: no memory bandwidth recorded (", Code("memory_bandwidth_gbs"),
                "; use --measure-bandwidth).")
    return ("Not available: no CPU-only configuration with decode speed.",)


def headline_sentence(h: Any) -> str:
    """One line of the CPU-vs-GPU headline (a :class:`~energybench.report.study.Headline`)."""
    sp, en, edp = h.speedup, h.energy_saved, h.edp_ratio
    return (f"{h.suite}: GPU {h.gpu} vs CPU {h.cpu}: x{fmt_ci(sp[0], sp[1], sp[2])} speed-up ({h.verdicts['speedup']}), "
            f"{_pct_ci(en)} energy saved ({h.verdicts['energy_saved']}), EDP ratio x{fmt_ci(edp[0], edp[1], edp[2])} "
            f"({h.verdicts['edp_ratio']})")


def _pct_ci(v: tuple[float, float, float]) -> str:
    return fmt_ci(v[0] * 100, v[1] * 100, v[2] * 100) + " %"
