"""The interactive parts of ``report.html``: an energy-latency view with hover values, a pick-two
comparison with a verdict, a configuration's settings and provenance on click, and (``--serve``)
the live progress of a sweep. Everything is inline (no CDN): the page works from a file.

The view is drawn in the browser, as SVG, from the same configuration table (medians and 95 %
bootstrap CIs) the Pareto figure is drawn from (:func:`.figures.fig_pareto`). The
comparison's verdict follows the report's rule (:mod:`.best`): CIs apart, or the 95 % CI of the
difference of medians (a seeded bootstrap over both configurations' runs) excluding 0, or within
the noise.
"""

from __future__ import annotations

import json
import math
from typing import Any

import polars as pl

from energybench.report.analysis import Analysis
from energybench.report.best import describe_config
from energybench.report.metrics import KNOB_COLUMNS
from energybench.report.tables import row_warnings

#: What the view, the tooltip and the comparison show: metric -> (label, unit). All lower-is-better
#: but decode speed.
SHOWN: dict[str, tuple[str, str]] = {
    "j_per_output_token": ("energy per output token", "J/tok"), "e2e_s": ("request latency", "s"),
    "edp_js": ("EDP per request", "J*s"), "request_energy_j": ("energy per request", "J"),
    "ms_per_output_token": ("latency per output token", "ms/tok"), "avg_power_w": ("average power", "W"),
    "decode_tok_s": ("decode speed", "tok/s"),
}
#: Per-run values carried for the comparison's bootstrap (capped per configuration).
COMPARED = ("j_per_output_token", "e2e_s", "edp_js")
MAX_VALUES = 200


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _settings(r: dict[str, Any]) -> dict[str, Any]:
    keys = [*KNOB_COLUMNS, "model", "model_quant", "n_gen", "n_prompt", "prompt_suite", "prompt_id"]
    return {k: r.get(k) for k in keys if r.get(k) is not None}


def _provenance(a: Analysis) -> dict[str, dict[str, Any]]:
    """Per set: where its numbers come from (a few metadata items)."""
    out = {}
    for rs in a.sets:
        m = rs.metadata
        out[rs.label] = {
            "results directory": str(rs.root), "config hash": m.get("config_hash"),
            "energybench": m.get("energybench_version"), "host CPU": (m.get("host") or {}).get("cpu_model"),
            "llama.cpp": (m.get("backend") or {}).get("version"),
            "meters": ", ".join(f"{x.get('name')}{' (estimate)' if x.get('estimate') else ''}"
                                for x in m.get("meters") or [] if isinstance(x, dict)) or "none",
            "generator": m.get("generator"),
        }
    return out


def _values(a: Analysis) -> dict[tuple[str, str], dict[str, list[float]]]:
    v = a.valid
    if v.height == 0:
        return {}
    cols = [c for c in COMPARED if c in v.columns]
    grouped = v.group_by(["set", "point_id"]).agg([pl.col(c).drop_nulls().head(MAX_VALUES) for c in cols])
    return {(r["set"], r["point_id"]): {c: [x for x in r[c] if _num(x) is not None] for c in cols}
            for r in grouped.iter_rows(named=True)}


def dashboard_data(a: Analysis) -> dict[str, Any]:
    """What the page's script draws: every configuration (id, settings, medians with CIs, per-run
    values, warnings), the workloads, the provenance per set."""
    values = _values(a)
    configs = []
    for i, r in enumerate(a.cfg.iter_rows(named=True)):
        configs.append({
            "i": i, "set": r["set"], "wl": r["workload"], "id": r.get("config_id") or r["point_id"],
            "pid": r["point_id"], "pareto": bool(r.get("pareto")), "reps": r["n_reps"], "failed": r["n_failed"],
            "text": describe_config({k: r[k] for k in (a.varied or ["n_threads"]) if k in r}),
            "settings": _settings(r), "mode": r.get("backend_mode") or "",
            "m": {m: [_num(r.get(m)), _num(r.get(f"{m}_lo")), _num(r.get(f"{m}_hi"))] for m in SHOWN},
            "v": values.get((r["set"], r["point_id"]), {}), "warnings": row_warnings(r),
            "energy": r.get("energy_sources") or "",
        })
    return {"configs": configs, "workloads": a.workloads, "labels": {m: list(v) for m, v in SHOWN.items()},
            "provenance": _provenance(a), "multi_set": a.multi_set}


def data_script(a: Analysis) -> str:
    """The data as an inline JSON script element (``</`` escaped so no value can end it)."""
    blob = json.dumps(dashboard_data(a), default=str, allow_nan=False).replace("</", "<\\/")
    return f'<script type="application/json" id="eb-data">{blob}</script>'


EXPLORE_HTML = """
<div class="explore-bar"><label>workload <select id="eb-workload"></select></label>
<span class="hint">Hover a point for its values (every configuration under the cursor); click it for its settings
and provenance, and to pick it for the comparison (A, then B).</span></div>
<div class="explore"><div class="view"><svg id="eb-view" width="720" height="400" role="img"
aria-label="energy per output token against request latency"></svg>
<div id="eb-tip" class="tip" hidden></div></div>
<div class="side"><h3>Compare two configurations</h3>
<label>A <select id="eb-pick-a"></select></label> <label>B <select id="eb-pick-b"></select></label>
<div id="eb-compare"><p class="muted">Pick two configurations.</p></div>
<h3>Details</h3><div id="eb-details"><p class="muted">Click a point.</p></div></div></div>
"""

PROGRESS_HTML = """
<div id="eb-progress"><div class="bar"><div id="eb-prog-fill" style="width:0%"></div></div>
<p id="eb-prog-text" class="big">waiting for the first state...</p>
<p id="eb-prog-current"></p><p id="eb-prog-eta"></p><p id="eb-prog-power"></p></div>
"""

CSS = """
.explore-bar{display:flex;gap:16px;align-items:center;flex-wrap:wrap;margin-bottom:8px} .hint,.muted{color:var(--muted);font-size:12.5px}
.explore{display:flex;gap:18px;flex-wrap:wrap} .view{position:relative} .side{flex:1;min-width:320px}
#eb-view{background:#fff;border:1px solid var(--line);border-radius:6px}
#eb-view circle.pt{cursor:pointer;stroke:#fff;stroke-width:1} #eb-view circle.pt:hover{stroke:#111;stroke-width:2}
#eb-view circle.pick{stroke:#111;stroke-width:2.5} #eb-view text{font-size:11px;fill:#334155}
.tip{position:absolute;pointer-events:none;background:#0f172a;color:#e2e8f0;padding:6px 9px;border-radius:6px;font-size:12px;
white-space:nowrap;z-index:5;box-shadow:0 2px 6px rgba(0,0,0,.25)} .tip hr{border:0;border-top:1px solid #334155;margin:4px 0}
.win{color:var(--ok);font-weight:600} .verdict{font-size:12.5px} .big{font-size:15px;font-weight:600;margin:6px 0}
.bar{height:14px;background:#e2e8f0;border-radius:7px;overflow:hidden;max-width:720px} #eb-prog-fill{height:100%;background:var(--accent)}
.cards{display:flex;gap:12px;flex-wrap:wrap} .card{background:var(--bg);border:1px solid var(--line);border-radius:8px;padding:8px 14px}
.card b{font-size:18px;display:block}
#eb-details table,#eb-compare table{table-layout:fixed;width:100%} #eb-details td,#eb-compare td{word-break:break-word}
#eb-details td:first-child{width:36%;white-space:normal}
"""

JS = r"""
(function(){
var D=JSON.parse(document.getElementById('eb-data').textContent), C=D.configs, picks=[null,null];
function f3(x){if(x===null||x===undefined||!isFinite(x))return '–';if(x===0)return '0';var m=Math.floor(Math.log10(Math.abs(x)));
  if(m>=6||m<=-4)return x.toExponential(2);var d=Math.max(0,2-m);return x.toFixed(d);}
function ci(v){return v&&v[0]!==null?f3(v[0])+(v[1]!==null&&v[2]!==null?' ['+f3(v[1])+', '+f3(v[2])+']':''):'–';}
function lab(m){var l=D.labels[m];return l[0]+' ('+l[1]+')';}
function esc(s){return String(s).replace(/[&<>"]/g,function(c){return {'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c];});}
var wsel=document.getElementById('eb-workload');
D.workloads.forEach(function(w){var o=document.createElement('option');o.value=w;o.textContent=w;wsel.appendChild(o);});
function name(c){return (D.multi_set?'['+c.set+'] ':'')+c.id;}
['eb-pick-a','eb-pick-b'].forEach(function(id,k){var s=document.getElementById(id),o=document.createElement('option');
  o.value='';o.textContent='-';s.appendChild(o);
  C.forEach(function(c){var o=document.createElement('option');o.value=c.i;o.textContent=name(c)+' - '+c.wl;s.appendChild(o);});
  s.addEventListener('change',function(){picks[k]=s.value===''?null:+s.value;save();compare();draw();});});
function save(){try{sessionStorage.setItem('eb-picks',JSON.stringify(picks));}catch(e){}}
try{var sp=JSON.parse(sessionStorage.getItem('eb-picks')||'null');if(sp&&sp.length===2)picks=sp.map(function(x){return x!==null&&C[x]?x:null;});}catch(e){}
var COL={'cpu':'#1f77b4','cuda-partial':'#ff7f0e','cuda-full':'#d62728'};
function draw(){
  var svg=document.getElementById('eb-view'),W=720,H=400,L=62,R=14,T=14,B=46,wl=wsel.value;
  var pts=C.filter(function(c){return c.wl===wl&&c.m.e2e_s[0]!==null&&c.m.j_per_output_token[0]!==null;});
  function span(m){var out=[];pts.forEach(function(c){c.m[m].forEach(function(v){if(v!==null&&isFinite(v))out.push(v);});});return out;}
  var xs=span('e2e_s').filter(function(v){return v>0;}),ys=span('j_per_output_token');
  var xmin=Math.min.apply(null,xs),xmax=Math.max.apply(null,xs),ymin=Math.min.apply(null,ys),ymax=Math.max.apply(null,ys);
  var logx=xmin>0&&xmax/xmin>8;function tx(v){return logx?Math.log10(v):v;}
  var a=tx(xmin),b=tx(xmax),py=(ymax-ymin)*0.08||Math.abs(ymax)*0.1||1,px=(b-a)*0.08||Math.abs(b)*0.1||1;
  a-=px;b+=px;var y0=ymin-py,y1=ymax+py;
  function X(v){return L+(tx(v)-a)/(b-a)*(W-L-R);} function Y(v){return H-B-(v-y0)/(y1-y0)*(H-T-B);}
  var h='<line x1="'+L+'" y1="'+(H-B)+'" x2="'+(W-R)+'" y2="'+(H-B)+'" stroke="#94a3b8"/><line x1="'+L+'" y1="'+T+'" x2="'+L+'" y2="'+(H-B)+'" stroke="#94a3b8"/>';
  for(var k=0;k<=4;k++){var xv=a+(b-a)*k/4,yv=y0+(y1-y0)*k/4,xr=logx?Math.pow(10,xv):xv;
    h+='<text x="'+(L+(W-L-R)*k/4)+'" y="'+(H-B+16)+'" text-anchor="middle">'+f3(xr)+'</text>';
    h+='<text x="'+(L-6)+'" y="'+(Y(yv)+4)+'" text-anchor="end">'+f3(yv)+'</text>';}
  h+='<text x="'+((W+L)/2)+'" y="'+(H-8)+'" text-anchor="middle">'+lab('e2e_s')+(logx?', log scale':'')+'</text>';
  h+='<text transform="translate(14,'+((H-B+T)/2)+') rotate(-90)" text-anchor="middle">'+lab('j_per_output_token')+'</text>';
  pts.forEach(function(c){var m=c.m,x=X(m.e2e_s[0]),y=Y(m.j_per_output_token[0]);
    if(m.j_per_output_token[1]!==null)h+='<line x1="'+x+'" x2="'+x+'" y1="'+Y(m.j_per_output_token[1])+'" y2="'+Y(m.j_per_output_token[2])+'" stroke="#94a3b8"/>';
    if(m.e2e_s[1]!==null&&m.e2e_s[1]>0)h+='<line y1="'+y+'" y2="'+y+'" x1="'+X(m.e2e_s[1])+'" x2="'+X(m.e2e_s[2])+'" stroke="#94a3b8"/>';});
  shown=[];
  pts.forEach(function(c){var x=X(c.m.e2e_s[0]),y=Y(c.m.j_per_output_token[0]),p=picks.indexOf(c.i)>=0;shown.push({c:c,x:x,y:y});
    if(c.pareto)h+='<circle cx="'+x+'" cy="'+y+'" r="9" fill="none" stroke="#111" stroke-width="1"/>';
    h+='<circle class="pt'+(p?' pick':'')+'" data-i="'+c.i+'" cx="'+x+'" cy="'+y+'" r="5.5" fill="'+(COL[c.mode]||'#9467bd')+'"/>';});
  svg.innerHTML=h;svg.setAttribute('data-points',String(pts.length));}
var shown=[],view=document.getElementById('eb-view');
function near(ev){var r=view.getBoundingClientRect(),mx=ev.clientX-r.left,my=ev.clientY-r.top;
  return shown.map(function(p){return {c:p.c,d:Math.hypot(p.x-mx,p.y-my)};}).filter(function(p){return p.d<=7;})
    .sort(function(a,b){return a.d-b.d;}).map(function(p){return p.c;});}
view.addEventListener('mousemove',function(ev){var n=near(ev);if(n.length)tip(n,ev);else document.getElementById('eb-tip').hidden=true;});
view.addEventListener('mouseleave',function(){document.getElementById('eb-tip').hidden=true;});
view.addEventListener('click',function(ev){var n=near(ev);if(n.length){details(n[0]);pick(n[0].i);}});
function tip(cs,ev){var t=document.getElementById('eb-tip'),r=view.getBoundingClientRect();
  t.innerHTML=cs.slice(0,6).map(function(c){return '<div class="tip-item" data-i="'+c.i+'"><b>'+esc(name(c))+'</b> '+esc(c.text)+
    '<br>'+lab('e2e_s')+': '+ci(c.m.e2e_s)+'<br>'+lab('j_per_output_token')+': '+ci(c.m.j_per_output_token)+'<br>'+lab('edp_js')+': '+
    ci(c.m.edp_js)+'<br>n='+c.reps+(c.pareto?' · Pareto front':'')+'</div>';}).join('<hr>')+(cs.length>6?'+ '+(cs.length-6)+' more here':'');
  t.hidden=false;t.style.left=(ev.clientX-r.left+14)+'px';t.style.top=(ev.clientY-r.top+10)+'px';}
function pick(i){if(picks[0]===null||picks[0]===i)picks[0]=i;else if(picks[1]===null)picks[1]=i;else{picks[0]=picks[1];picks[1]=i;}
  save();sync();compare();draw();}
function sync(){document.getElementById('eb-pick-a').value=picks[0]===null?'':picks[0];document.getElementById('eb-pick-b').value=picks[1]===null?'':picks[1];}
function details(c){var s='<table class="kv"><tr><td>configuration</td><td><b>'+esc(name(c))+'</b></td></tr><tr><td>point id</td><td><code>'+esc(c.pid)+'</code></td></tr>';
  s+='<tr><td>workload</td><td>'+esc(c.wl)+'</td></tr>';
  Object.keys(c.settings).forEach(function(k){s+='<tr><td>'+esc(k)+'</td><td>'+esc(c.settings[k])+'</td></tr>';});
  s+='<tr><td>repetitions</td><td>'+c.reps+(c.failed?' ('+c.failed+' failed)':'')+'</td></tr><tr><td>energy</td><td>'+esc(c.energy||'none')+'</td></tr>';
  Object.keys(D.labels).forEach(function(m){s+='<tr><td>'+esc(lab(m))+'</td><td>'+ci(c.m[m])+'</td></tr>';});
  var p=D.provenance[c.set]||{};Object.keys(p).forEach(function(k){if(p[k]!==null&&p[k]!==undefined)s+='<tr><td>'+esc(k)+'</td><td>'+esc(p[k])+'</td></tr>';});
  if(c.warnings.length)s+='<tr><td>warnings</td><td class="warn">'+esc(c.warnings.join('; '))+'</td></tr>';
  document.getElementById('eb-details').innerHTML=s+'</table>';}
function rng(seed){return function(){seed|=0;seed=seed+0x6D2B79F5|0;var t=Math.imul(seed^seed>>>15,1|seed);
  t=t+Math.imul(t^t>>>7,61|t)^t;return((t^t>>>14)>>>0)/4294967296;};}
function med(a){var s=a.slice().sort(function(x,y){return x-y;}),n=s.length;return n?(s[(n-1)>>1]+s[n>>1])/2:NaN;}
function diffci(a,b){var r=rng(12345),d=[];for(var k=0;k<2000;k++){var ra=[],rb=[];
  for(var i=0;i<a.length;i++)ra.push(a[Math.floor(r()*a.length)]);for(i=0;i<b.length;i++)rb.push(b[Math.floor(r()*b.length)]);
  d.push(med(rb)-med(ra));}d.sort(function(x,y){return x-y;});return [d[Math.floor(0.025*1999)],d[Math.ceil(0.975*1999)]];}
function verdict(A,B,m){var a=A.m[m],b=B.m[m];if(a[0]===null||b[0]===null)return {text:'no data',win:null};
  var win=a[0]<=b[0]?A:B,lose=win===A?B:A,w=win.m[m],l=lose.m[m],rel=(l[0]-w[0])/Math.abs(l[0])*100;
  var va=(A.v||{})[m]||[],vb=(B.v||{})[m]||[],how;
  if(w[1]===null||l[1]===null||va.length<2||vb.length<2)how='too few repetitions to tell';
  else if(w[2]<l[1])how='CIs do not overlap: larger than the noise';
  else{var c=diffci(win===A?va:vb,win===A?vb:va);how=c[0]>0?'beyond the noise (95 % CI of the difference excludes 0)':'within the noise: either is fine';}
  return {text:name(win)+' lower by '+rel.toFixed(1)+' %, '+how,win:win,noise:how.indexOf('within')===0};}
function compare(){var el=document.getElementById('eb-compare');if(picks[0]===null||picks[1]===null||picks[0]===picks[1]){
  el.innerHTML='<p class="muted">Pick two configurations.</p>';return;}
  var A=C[picks[0]],B=C[picks[1]],s='<table><tr><th></th><th>A '+esc(name(A))+'</th><th>B '+esc(name(B))+'</th></tr>';
  Object.keys(D.labels).forEach(function(m){var a=A.m[m][0],b=B.m[m][0],better=m==='decode_tok_s'?(a>b?0:1):(a<b?0:1);
    s+='<tr><td>'+esc(lab(m))+'</td><td class="'+(better===0&&a!==b?'win':'')+'">'+ci(A.m[m])+'</td><td class="'+(better===1&&a!==b?'win':'')+'">'+ci(B.m[m])+'</td></tr>';});
  s+='</table>';if(A.wl!==B.wl)s+='<p class="warn">Different workloads: compare with care.</p>';
  var v=verdict(A,B,'j_per_output_token'),t=verdict(A,B,'e2e_s'),e=verdict(A,B,'edp_js');
  s+='<p class="verdict" id="eb-verdict"><b>Energy:</b> '+esc(v.text)+'<br><b>Latency:</b> '+esc(t.text)+'<br><b>EDP:</b> '+esc(e.text)+'</p>';
  var w=v.win&&!v.noise?name(v.win):'no clear winner';s+='<p class="big" id="eb-winner">Winner on energy per token: '+esc(w)+'</p>';
  el.innerHTML=s;}
wsel.addEventListener('change',draw);draw();sync();compare();
document.documentElement.setAttribute('data-dashboard','ready');
})();
"""

PROGRESS_JS = r"""
(function(){var poll=%d;function f(s){if(s===null||s===undefined)return '–';s=Math.round(s);
  return s<60?s+' s':s<3600?Math.floor(s/60)+' min '+('0'+s%%60).slice(-2)+' s':Math.floor(s/3600)+' h '+('0'+Math.floor(s%%3600/60)).slice(-2)+' min';}
function show(p){if(!p)return;var pct=p.planned?Math.min(100,100*p.done/p.planned):0;
  document.getElementById('eb-prog-fill').style.width=pct.toFixed(1)+'%%';
  document.getElementById('eb-prog-text').textContent=p.done+' / '+p.planned+' runs ('+pct.toFixed(0)+' %%'+(p.failed?', '+p.failed+' failed':'')+') - '+p.status;
  document.getElementById('eb-prog-current').textContent=p.current?'now: '+p.current.config_id+' on '+p.current.prompt+' (run '+p.current.run_id+')':'';
  document.getElementById('eb-prog-eta').textContent=p.status==='running'?'elapsed '+f(p.elapsed_s)+', ETA '+f(p.eta_s):'';
  var w=p.power_w||{},k=Object.keys(w);document.getElementById('eb-prog-power').textContent=k.length?'last power readings (run '+p.last_run+'): '+k.map(function(d){return d+' '+w[d]+' W';}).join(', '):'';
  document.getElementById('eb-progress').setAttribute('data-done',String(p.done));}
function tick(){fetch('api/state',{cache:'no-store'}).then(function(r){return r.json();}).then(function(s){show((s.progress||[])[0]);})
  .catch(function(){}).finally(function(){setTimeout(tick,poll);});}tick();})();
"""


def progress_script(poll_ms: int) -> str:
    return PROGRESS_JS % int(poll_ms)
