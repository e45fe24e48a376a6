"""A comparison (:mod:`energybench.compare`) as plain text or GitHub-flavoured Markdown: the same
tables either way, numbers formatted by :mod:`energybench.report.fmt`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from energybench.compare import Comparison, MetricChange, SetComparison
from energybench.metrics import METRICS, heading
from energybench.report.fmt import fmt_ci, fmt_num
from energybench.report.markdown import md_table

Table = tuple[list[str], list[list[str]]]

CI_NOTE = "NEW/BASE: ratio of the medians, 95 % bootstrap CI; verdict from the CI (excludes 1: better or worse)"


def _ratio(c: MetricChange) -> str:
    if c.ratio is None:
        return "–"
    head = f"{fmt_num(c.ratio, 4)}x"
    return head if c.ratio_lo is None else f"{head} [{fmt_num(c.ratio_lo, 4)}, {fmt_num(c.ratio_hi, 4)}]"


def _verdict(c: MetricChange) -> str:
    text = c.verdict
    if c.verdict in ("better", "worse") and c.worse_pct is not None:
        text += f" by {abs(c.worse_pct):.1f} %"
    return text + (" (estimate)" if c.estimate else "")


def changes_table(s: SetComparison) -> Table:
    header = ["configuration", "workload", "metric", "BASE", "NEW", "NEW/BASE [95% CI]", "verdict"]
    rows = [[p.label, p.new.workload, heading(c.metric), fmt_num(c.base.median), fmt_num(c.new.median), _ratio(c),
             _verdict(c)] for p in s.pairs for c in p.changes]
    return header, rows


def cost_table(c: Comparison) -> Table:
    t = c.tariff
    header = ["set", "configuration", "workload", "kWh / 1M tok"]
    header += ["cost / 1M tok"] if t and t.price_per_kwh is not None else []
    header += ["gCO2e / 1M tok"] if t and t.carbon_g_per_kwh is not None else []
    header.append("energy")
    rows = []
    for r in c.costs:
        row = [r.set, r.configuration.config_id, r.configuration.workload, fmt_ci(*r.cost.kwh)]
        row += [fmt_ci(*r.cost.money)] if r.cost.money is not None else []
        row += [fmt_ci(*r.cost.co2e_g)] if r.cost.co2e_g is not None else []
        row.append("estimate" if r.cost.estimate else "measured")
        rows.append(row)
    return header, rows


def _text_table(t: Table) -> list[str]:
    header, rows = t
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*header).rstrip(), *(fmt.format(*r).rstrip() for r in rows)]


def _geo(c: Comparison, s: SetComparison) -> str:
    parts = [f"{METRICS[m].label} {fmt_num(g, 4)}x" for m in c.metrics if (g := s.geometric_mean(m)) is not None]
    return "geometric mean of NEW/BASE: " + (", ".join(parts) if parts else "–")


def _listing(s: SetComparison) -> list[str]:
    out = [f"only in BASE: {x.config_id} ({x.workload})" for x in s.only_base]
    return out + [f"only in NEW: {x.config_id} ({x.workload})" for x in s.only_new]


def machines_lines(c: Comparison, table: Callable[[Table], list[str]], bullet: str) -> list[str]:
    """The same configurations on each kind of machine (sets of several machines only)."""
    from energybench.report.tables import cross_machine_table, machine_caveats

    t = cross_machine_table(c.machines)
    if t is None:
        return []
    out = ["", "across machines, lowest energy per output token first (95 % bootstrap CIs):", ""]
    out += [f"{bullet}{lab}: {desc}" for lab, desc in c.machines.machines.items()] + [""]
    return out + table((t.header, t.rows)) + [f"{bullet}caveat: {x}" for x in machine_caveats(c)]


def gate_line(c: Comparison, pct: float) -> str:
    regs = c.regressions(pct)
    if not regs:
        return f"regression gate ({pct:g} %): passed, no configuration is worse by more than {pct:g} % beyond noise"
    items = "; ".join(f"{lab}: {p.label} {METRICS[ch.metric].label} worse by {ch.worse_pct:.1f} %"
                      for lab, p, ch in regs)
    return (f"regression gate ({pct:g} %): FAILED, {len(regs)} change(s) worse by more than {pct:g} % beyond "
            f"noise: {items}")


def _set_lines(c: Comparison, s: SetComparison, table: Sequence[str], bullet: str) -> list[str]:
    notes = [d.text() for d in s.differences] if s.differences else []
    out = [*table] if s.pairs else ["no configuration in common"]
    out += ["", _geo(c, s)] if len(s.pairs) > 1 else []  # over several configurations, as pyperf
    out += [f"{bullet}{x}" for x in _listing(s)]
    out += [f"{bullet}different, compared anyway: {x}" for x in notes]
    return out + [f"{bullet}warning: {w}" for w in s.warnings]


def render_text(c: Comparison, fail_pct: float | None = None) -> str:
    out = [f"BASE {c.base}: {c.base_machine}"]
    for s in c.sets:
        out += ["", f"NEW {s.label} vs BASE {c.base}: {s.machine}", CI_NOTE, ""]
        out += _set_lines(c, s, _text_table(changes_table(s)), "")
    if c.tariff is not None:
        out += ["", f"cost and CO2e per 1M output tokens at {c.tariff.describe()} (95 % CI of the energy):", ""]
        out += _text_table(cost_table(c))
    out += machines_lines(c, _text_table, "")
    if fail_pct is not None:
        out += ["", gate_line(c, fail_pct)]
    return "\n".join(out) + "\n"


def render_markdown(c: Comparison, fail_pct: float | None = None) -> str:
    out = [f"### energybench compare: BASE `{c.base}`", "", f"BASE: {c.base_machine}"]
    for s in c.sets:
        out += ["", f"#### NEW `{s.label}` vs BASE `{c.base}`", "", f"NEW: {s.machine}. {CI_NOTE}.", ""]
        out += _set_lines(c, s, md_table(*changes_table(s)).splitlines(), "- ")
    if c.tariff is not None:
        out += ["", f"Cost and CO2e per 1M output tokens at {c.tariff.describe()} (95 % CI of the energy):", ""]
        out += md_table(*cost_table(c)).splitlines()
    out += machines_lines(c, lambda t: md_table(*t).splitlines(), "- ")
    if fail_pct is not None:
        out += ["", f"**{gate_line(c, fail_pct)}**"]
    return "\n".join(out) + "\n"
