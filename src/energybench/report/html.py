"""The report as one self-contained HTML page: the words of :mod:`.sections` and the tables of
:mod:`.tables`, figures inlined as data URIs, a sortable results table, no external resources."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from energybench.report import sections as S
from energybench.report.analysis import Analysis
from energybench.report.figures import FigureFile
from energybench.report import dashboard
from energybench.report.tables import (
    Table, compare_table, cross_machine_table, domain_table, headline_table, machine_caveats,
    machine_list_table, pareto_table, provenance, ranking_table, results_columns, roofline_table,
    row_warnings, suite_backend_table,
)

_CSS = """
:root{--fg:#1d2330;--muted:#5b6575;--line:#d9dee7;--bg:#f6f8fb;--card:#fff;--accent:#2563eb;--warn:#b45309;--ok:#047857}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);background:var(--bg)}
header{background:#0f172a;color:#e2e8f0;padding:18px 28px}
header h1{margin:0;font-size:22px;letter-spacing:.2px} header p{margin:4px 0 0;color:#94a3b8;font-size:12.5px}
header nav{margin-top:10px;display:flex;gap:14px;flex-wrap:wrap;font-size:13px}
header nav a{color:#cbd5e1;text-decoration:none} header nav a:hover{color:#fff;text-decoration:underline}
section{scroll-margin-top:12px}
main{padding:18px 28px 40px;max-width:1500px;margin:0 auto}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 18px;margin:14px 0;box-shadow:0 1px 2px rgba(15,23,42,.04)}
h2{font-size:17px;margin:2px 0 10px} h3{font-size:14px;margin:12px 0 6px;color:#334155}
.stats{display:flex;gap:12px;flex-wrap:wrap}
.stat{background:var(--bg);border:1px solid var(--line);border-radius:8px;padding:8px 14px;min-width:120px}
.stat b{display:block;font-size:20px} .stat span{color:var(--muted);font-size:12px}
.warn{color:var(--warn)} ul.warnings{margin:8px 0 0;padding-left:18px} ul.warnings li{margin:2px 0}
.badge{display:inline-block;font-size:11px;padding:1px 7px;border-radius:9px;background:#fef3c7;color:#92400e;margin:1px 3px 1px 0;white-space:nowrap}
.badge.ok{background:#d1fae5;color:var(--ok)} .badge.live{background:#dbeafe;color:#1e40af}
table{border-collapse:collapse;width:100%;font-size:12.5px}
th,td{border-bottom:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f1f5f9;position:sticky;top:0;z-index:1;font-weight:600;white-space:nowrap}
table.sortable th{cursor:pointer;user-select:none} table.sortable th:hover{background:#e2e8f0}
th.asc::after{content:" \\25B2";font-size:9px} th.desc::after{content:" \\25BC";font-size:9px}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.pareto td{background:#f0fdf4} tr:hover td{background:#eef2ff}
.scroll{overflow:auto;max-height:640px;border:1px solid var(--line);border-radius:6px}
.rec{border-left:4px solid var(--accent);padding:6px 10px;margin:6px 0;background:#f8fafc}
.rec .v{font-weight:600} .rec .why{color:var(--muted);font-size:12.5px}
figure{margin:10px 0 22px} figure>svg{display:block;max-width:100%;height:auto;border:1px solid var(--line);border-radius:6px;background:#fff}
figcaption{color:var(--muted);font-size:12.5px;margin-top:4px}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:14px}
code{background:#f1f5f9;padding:1px 4px;border-radius:4px;font-size:12px}
.kv td:first-child{color:var(--muted);white-space:nowrap;width:1%}
"""

_SORT_JS = """
window.addEventListener('load',function(){var n=0;document.querySelectorAll('figure>svg').forEach(function(s){
  if(s.getBoundingClientRect().width>0&&s.querySelector('text'))n++});document.documentElement.setAttribute('data-figures-loaded',String(n));});
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th,i){
    th.addEventListener('click',function(){
      var asc=!th.classList.contains('asc');
      t.querySelectorAll('th').forEach(function(h){h.classList.remove('asc','desc')});
      th.classList.add(asc?'asc':'desc');
      var body=t.tBodies[0], rows=Array.prototype.slice.call(body.rows);
      rows.sort(function(a,b){
        var x=a.cells[i].getAttribute('data-v'), y=b.cells[i].getAttribute('data-v');
        var nx=parseFloat(x), ny=parseFloat(y), c;
        if(x===''&&y==='')c=0; else if(x==='')return 1; else if(y==='')return -1;
        else if(!isNaN(nx)&&!isNaN(ny))c=nx-ny; else c=String(x).localeCompare(String(y));
        return asc?c:-c;});
      rows.forEach(function(r){body.appendChild(r)});
    });
  });
});
"""

_LIVE_JS = """
(function(){var v=%s;function poll(){fetch('api/state',{cache:'no-store'}).then(function(r){return r.json()})
.then(function(s){var el=document.getElementById('live');if(el)el.textContent='live: '+s.n_runs+' runs, updated '+s.updated_at;
if(s.version!==v){location.reload();}}).catch(function(){}).finally(function(){setTimeout(poll,%d)})}
setTimeout(poll,%d)})();
"""


_NOTE_STYLE = "color:var(--muted);font-size:12.5px;margin:0 0 8px"


def _e(s: Any) -> str:
    return html.escape(str(s), quote=True)


def _inline(p: S.Paragraph) -> str:
    return "".join(f"<code>{_e(x.text)}</code>" if isinstance(x, S.Code)
                   else f"<sub>{_e(x.text)}</sub>" if isinstance(x, S.Sub) else _e(x) for x in p)


def _sort_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, (int, float)):
        return "" if isinstance(v, float) and not math.isfinite(v) else repr(v)
    return str(v)


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, cls: str = "",
                numeric: Sequence[bool] | None = None) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for r in rows:
        tds = "".join(f'<td class="num">{_e(c)}</td>' if numeric and numeric[i] else f"<td>{_e(c)}</td>"
                      for i, c in enumerate(r))
        body.append(f"<tr>{tds}</tr>")
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _table(t: Table, *, cls: str = "") -> str:
    return _html_table(t.header, t.rows, cls=cls, numeric=t.numeric)


def _section(sec: S.Section, inner: str) -> str:
    return f'<section id="{sec.id}"><h2>{_e(sec.title)}</h2>{inner}</section>'


def render_html(a: Analysis, figures: Sequence[FigureFile], *, generated_at: datetime | None = None,
                live: dict[str, Any] | None = None) -> str:
    """A self-contained HTML page: figures inlined as data URIs, a sortable table, provenance.

    ``live``: ``{"version": str, "poll_ms": int}`` adds a script that polls ``api/state`` and reloads
    the page when the report was rebuilt (``energybench report --serve``).
    """
    ts = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    live_badge = '<span class="badge live" id="live">live</span>' if live else ""
    head = (f"<header><h1>{_e(S.TITLE)} {live_badge}</h1>"
            f"<p>{_e(S.generated(ts, ', '.join(str(rs.root) for rs in a.sets)))}</p><nav>NAV</nav></header>")
    main = "".join((_summary(a), _progress(live), _recommendations(a), _study(a), _explore(a), _figures(figures),
                    _pareto(a), _race(a), _roofline(a), _compare(a), _machines(a), _results(a), _domains(a), _provenance(a)))
    links = " ".join(f'<a href="#{s.id}">{_e(s.nav)}</a>' for s in S.NAV if f'id="{s.id}"' in main)
    body = head.replace("<nav>NAV</nav>", f"<nav>{links}</nav>", 1) + f"<main>{main}</main>"
    script = _SORT_JS + (dashboard.JS if a.cfg.height else "")
    if live:
        poll = int(live.get("poll_ms", 2000))
        script += _LIVE_JS % (json.dumps(str(live.get("version", ""))), poll, poll) + dashboard.progress_script(poll)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(S.TITLE)}</title><style>{_CSS}{dashboard.CSS}</style></head><body>"
            + body + f"<script>{script}</script></body></html>\n")


def _summary(a: Analysis) -> str:
    stats = "".join(f'<div class="stat"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for k, v in S.summary_stats(a))
    warn = ""
    if a.warnings:
        warn = ('<ul class="warnings">' + "".join(f'<li class="warn">{S.WARNING_MARK} {_e(w)}</li>' for w in a.warnings)
                + "</ul>")
    note = f'<p class="why" style="color:var(--muted);font-size:12.5px;margin:10px 0 0">{_e(S.STATISTICS_NOTE)}</p>'
    return _section(S.SUMMARY, f'<div class="stats">{stats}</div>{warn}{note}')


def _badges(warnings: Sequence[str]) -> str:
    return "".join(f'<span class="badge">{_e(w)}</span>' for w in warnings)


def _recommendations(a: Analysis) -> str:
    parts = []
    for title, items in S.recommendation_groups(a):
        parts.append(f"<h3>{_e(title)}</h3>")
        parts += [f'<div class="rec"><b>{_e(r.label)}</b>: <code>{_e(r.config)}</code> '
                  f'<span class="v">{_e(r.value)}</span> ({_e(r.n)}) {_badges(r.warnings)}'
                  f'<div class="why">{_e(r.verdict)}</div></div>' for r in items]
    return _section(S.RECOMMENDATIONS, "".join(parts) or f"<p>{_e(S.RECOMMENDATIONS.empty)}</p>")


def _progress(live: dict[str, Any] | None) -> str:
    """The live progress of a sweep (``--serve`` only; filled from ``api/state``)."""
    return _section(S.PROGRESS, dashboard.PROGRESS_HTML) if live else ""


def _study(a: Analysis) -> str:
    """The original study's tables, the CPU-vs-GPU headline first, as cards."""
    summary = suite_backend_table(a)
    if summary is None:
        return _section(S.STUDY, f"<p>{_e(S.STUDY.empty)}</p>")
    parts = [f'<p style="{_NOTE_STYLE}">{_inline(S.STUDY_NOTE)}</p>', f"<h3>{_e(S.HEADLINE_TITLE)}</h3>"]
    head = headline_table(a)
    if head is None:
        parts.append(f'<p id="eb-headline">{_e(S.HEADLINE_NONE)}</p>')
    else:
        cards = "".join(f'<div class="card"><b>{_e(label)}</b>{_e(text)}</div>' for h in a.study.headlines
                        for label, text in _headline_cards(h))
        parts += [f'<div class="cards" id="eb-headline">{cards}</div>', f'<p style="{_NOTE_STYLE}">{_e(S.HEADLINE_NOTE)}</p>',
                  f'<div class="scroll">{_table(head)}</div>']
    parts += [f"<h3>{_e(S.SUITE_TITLE)}</h3>", f'<div class="scroll">{_table(summary)}</div>']
    ranking = ranking_table(a)
    if ranking is not None:
        parts += [f"<h3>{_e(S.RANKING_TITLE)}</h3>", f'<p style="{_NOTE_STYLE}">{_e(S.RANKING_NOTE)}</p>',
                  f'<div class="scroll">{_table(ranking, cls="sortable")}</div>']
    return _section(S.STUDY, "".join(parts))


def _headline_cards(h: Any) -> list[tuple[str, str]]:
    from energybench.report.fmt import fmt_ci

    sp, en, edp = h.speedup, h.energy_saved, h.edp_ratio
    return [(f"x{fmt_ci(*sp)}", f"speed-up, {h.suite}: GPU {h.gpu} vs CPU {h.cpu} ({h.verdicts['speedup']})"),
            (f"{fmt_ci(*(x * 100 for x in en))} %", f"energy saved ({h.verdicts['energy_saved']})"),
            (f"x{fmt_ci(*edp)}", f"EDP ratio CPU/GPU ({h.verdicts['edp_ratio']})")]


def _explore(a: Analysis) -> str:
    """The interactive energy-latency view, pick-two comparison and details (drawn by the page)."""
    if not a.cfg.height:
        return ""
    return _section(S.EXPLORE, dashboard.EXPLORE_HTML + dashboard.data_script(a))


def _figures(figures: Sequence[FigureFile]) -> str:
    if not figures:
        return ""
    figs = []
    for f in figures:
        links = " · ".join(f'<a href="figures/{_e(p.name)}">{_e(fmt.upper())}</a>' for fmt, p in f.paths.items())
        figs.append(f'<figure id="fig-{_e(f.name)}">{f.svg}<figcaption><b>{_e(f.title)}.</b> {_e(f.caption)} '
                    f'<span style="float:right">{links}</span></figcaption></figure>')
    return _section(S.FIGURES, "".join(figs))


def _pareto(a: Analysis) -> str:
    t = pareto_table(a)
    return _section(S.PARETO, _table(t)) if t else ""


def _race(a: Analysis) -> str:
    return _section(S.RACE, f"<p>{_inline(S.race_paragraph(a))}</p>") if a.windows else ""


def _roofline(a: Analysis) -> str:
    t = roofline_table(a)
    return _section(S.ROOFLINE, f"<p>{_inline(S.roofline_paragraph(a))}</p>{_table(t)}") if t else ""


def _compare(a: Analysis) -> str:
    if not a.multi_set:
        return ""
    t = compare_table(a)
    inner = f'<div class="scroll">{_table(t, cls="sortable")}</div>' if t.rows else f"<p>{_e(S.COMPARE.empty)}</p>"
    return _section(S.COMPARE, inner)


def _machines(a: Analysis) -> str:
    machines = machine_list_table(a)
    if machines is None:
        return ""
    t = cross_machine_table(a.machines)
    inner = _table(machines, cls="kv")
    inner += (f'<p style="{_NOTE_STYLE}">{_e(S.MACHINES_NOTE)}</p><div class="scroll">{_table(t, cls="sortable")}</div>'
              if t else f"<p>{_e(S.MACHINES.empty)}</p>")
    caveats = machine_caveats(a)
    if caveats:
        inner += (f"<p>{_e(S.MACHINES_CAVEAT)}</p><ul class=\"warnings\">"
                  + "".join(f'<li class="warn">{S.WARNING_MARK} {_e(c)}</li>' for c in caveats) + "</ul>")
    return _section(S.MACHINES, inner)


def _results(a: Analysis) -> str:
    table = _results_table(a) if a.cfg.height else f"<p>{_e(S.RESULTS.empty)}</p>"
    return _section(S.RESULTS, f'<p style="{_NOTE_STYLE}">{_e(S.RESULTS_HINT)}</p>{table}')


def _results_table(a: Analysis) -> str:
    cols = results_columns(a)
    th = "".join(f'<th title="{_e(c.title)}">{_e(c.header)}</th>' for c in cols)
    body = []
    for r in a.cfg.iter_rows(named=True):
        tds = []
        for c in cols:
            key = c.key(r)
            if c.header == "warnings":
                tds.append(f'<td data-v="{_e(_sort_value(key))}">{_badges(row_warnings(r))}</td>')
            else:
                num = isinstance(key, (int, float)) and not isinstance(key, bool)
                tds.append(f'<td{" class=num" if num else ""} data-v="{_e(_sort_value(key))}">{_e(c.text(r))}</td>')
        body.append(f'<tr{" class=pareto" if r.get("pareto") else ""}>{"".join(tds)}</tr>')
    return (f'<div class="scroll"><table class="sortable" id="results"><thead><tr>{th}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _domains(a: Analysis) -> str:
    t = domain_table(a)
    if t is None:
        return ""
    return _section(S.DOMAINS, f'<p style="{_NOTE_STYLE}">{_inline(S.DOMAINS_NOTE)}</p>{_table(t, cls="sortable")}')


def _provenance(a: Analysis) -> str:
    parts = []
    for p in provenance(a):
        if a.multi_set:
            parts.append(f"<h3>{_e(p.label)}</h3>")
        parts.append(_table(p.items, cls="kv"))
        if p.models:
            parts.append(f"<h3>{_e(S.MODELS_TITLE)}</h3>" + _table(p.models))
        if p.meters:
            parts.append(f"<h3>{_e(S.METERS_TITLE)}</h3>" + _table(p.meters))
    return _section(S.PROVENANCE, "".join(parts))
