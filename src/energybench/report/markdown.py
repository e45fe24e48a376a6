"""The report as Markdown: the words of :mod:`.sections` and the tables of :mod:`.tables`, laid out
as GitHub-flavoured Markdown (figures linked as ``figures/<name>.svg``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from energybench.report import sections as S
from energybench.report.analysis import Analysis
from energybench.report.figures import FigureFile
from energybench.report.tables import (
    Table, compare_table, cross_machine_table, domain_table, headline_table, machine_caveats,
    machine_list_table, pareto_table, provenance, ranking_table, results_columns, roofline_table,
    suite_backend_table,
)


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def esc(s: str) -> str:
        return str(s).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _table(t: Table) -> str:
    return md_table(t.header, t.rows)


def _inline(p: S.Paragraph) -> str:
    return "".join(f"`{x.text}`" if isinstance(x, S.Code) else f"_{x.text}" if isinstance(x, S.Sub) else x
                   for x in p)


def _heading(section: S.Section) -> list[str]:
    return [f"## {section.title}", ""]


def render_markdown(a: Analysis, figures: Sequence[FigureFile], *, generated_at: datetime | None = None) -> str:
    """The report as Markdown (figures linked as ``figures/<name>.svg``)."""
    ts = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    sources = ", ".join(f"`{rs.root}`" + (f" ({rs.label})" if a.multi_set else "") for rs in a.sets)
    out = [f"# {S.TITLE}", "", S.generated(ts, sources) + ".", ""]
    for part in (_summary(a), _recommendations(a), _study(a), _pareto(a), _race(a), _roofline(a), _compare(a), _machines(a), _results(a),
                 _domains(a), _figures(figures), _provenance(a)):
        out += part
    return "\n".join(out).rstrip() + "\n"


def _summary(a: Analysis) -> list[str]:
    out = _heading(S.SUMMARY) + [S.summary_line(a) + ".", ""]
    if a.warnings:
        out += [f"**{S.WARNINGS_LABEL}**", ""] + [f"- {S.WARNING_MARK} {w}" for w in a.warnings] + [""]
    return out + [S.STATISTICS_NOTE, ""]


def _recommendations(a: Analysis) -> list[str]:
    out = _heading(S.RECOMMENDATIONS)
    groups = S.recommendation_groups(a)
    if not groups:
        out += [S.RECOMMENDATIONS.empty, ""]
    for title, items in groups:
        out += [f"### {title}", ""]
        out += [f"- **{r.label}**: {r.config} -- {r.value} ({r.n}); {r.verdict}"
                + (f" {S.WARNING_MARK} {'; '.join(r.warnings)}" if r.warnings else "") for r in items]
        out.append("")
    return out


def _study(a: Analysis) -> list[str]:
    """The original study's tables: per suite x backend, CPU vs GPU, EDP ranking."""
    out = _heading(S.STUDY)
    summary = suite_backend_table(a)
    if summary is None:
        return out + [S.STUDY.empty, ""]
    out += [_inline(S.STUDY_NOTE), "", f"### {S.SUITE_TITLE}", "", _table(summary), "", f"### {S.HEADLINE_TITLE}", ""]
    head = headline_table(a)
    if head is None:
        out += [S.HEADLINE_NONE, ""]
    else:
        out += [f"- {S.headline_sentence(h)}" for h in a.study.headlines] + ["", S.HEADLINE_NOTE, "", _table(head), ""]
    ranking = ranking_table(a)
    if ranking is not None:
        out += [f"### {S.RANKING_TITLE}", "", S.RANKING_NOTE, "", _table(ranking), ""]
    return out


def _pareto(a: Analysis) -> list[str]:
    t = pareto_table(a)
    return _heading(S.PARETO) + [_table(t), ""] if t else []


def _race(a: Analysis) -> list[str]:
    return _heading(S.RACE) + [_inline(S.race_paragraph(a)), ""] if a.windows else []


def _roofline(a: Analysis) -> list[str]:
    t = roofline_table(a)
    if t is None:
        return _heading(S.ROOFLINE) + [_inline(S.roofline_unavailable(a)), ""]
    return _heading(S.ROOFLINE) + [_inline(S.roofline_paragraph(a)), "", _table(t), ""]


def _compare(a: Analysis) -> list[str]:
    if not a.multi_set:
        return []
    t = compare_table(a)
    return _heading(S.COMPARE) + [_table(t) if t.rows else S.COMPARE.empty, ""]


def _machines(a: Analysis) -> list[str]:
    machines = machine_list_table(a)
    if machines is None:
        return []
    t = cross_machine_table(a.machines)
    out = _heading(S.MACHINES) + [_table(machines), ""]
    out += [S.MACHINES_NOTE, "", _table(t), ""] if t else [S.MACHINES.empty, ""]
    caveats = machine_caveats(a)
    return out + ([S.MACHINES_CAVEAT, ""] + [f"- {S.WARNING_MARK} {c}" for c in caveats] + [""] if caveats else [])


def _results(a: Analysis) -> list[str]:
    cols = results_columns(a)
    rows = [[c.text(r) for c in cols] for r in a.cfg.iter_rows(named=True)]
    return _heading(S.RESULTS) + [md_table([c.header for c in cols], rows) if rows else S.RESULTS.empty, ""]


def _domains(a: Analysis) -> list[str]:
    t = domain_table(a)
    return _heading(S.DOMAINS) + [_inline(S.DOMAINS_NOTE), "", _table(t), ""] if t else []


def _figures(figures: Sequence[FigureFile]) -> list[str]:
    out = _heading(S.FIGURES)
    for f in figures:
        out += [f"### {f.title}", "", f"![{f.title}](figures/{f.name}.svg)", "", f.caption, ""]
    return out if figures else out + [S.FIGURES.empty, ""]


def _provenance(a: Analysis) -> list[str]:
    out = _heading(S.PROVENANCE)
    for p in provenance(a):
        if a.multi_set:
            out += [f"### {p.label}", ""]
        for t in (p.items, p.models, p.meters):
            if t is not None:
                out += [_table(t), ""]
    return out
