"""The report page: one self-contained HTML file (styles, script and every
figure inline; nothing is fetched when it is opened: its Content-Security-Policy
forbids it). The figures come from figures.py and graph.py; this module lays
them out with the tables and the header.
"""

import html
import math
import re

from . import figures, graph

CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2733;
 background:#f6f7f9}
header{background:#1f2d3d;color:#fff;padding:14px 24px}
header h1{margin:0 0 4px;font-size:20px}
header .sub{color:#c9d3df;font-size:13px}
main{padding:12px 24px;max-width:1500px}
section{background:#fff;border:1px solid #dde2e8;border-radius:6px;padding:12px 16px;margin:12px 0}
h2{font-size:16px;margin:0 0 8px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:12px}
.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;font-size:13px}
.kv dt{color:#5b6b7c}.kv dd{margin:0;word-break:break-all}
code{background:#eef1f5;padding:1px 4px;border-radius:3px;font-size:12px}
table{border-collapse:collapse;font-size:12.5px;width:100%}
th,td{padding:3px 7px;border-bottom:1px solid #e6e9ee;text-align:right;white-space:nowrap}
th{background:#f0f3f7;cursor:pointer;user-select:none;position:sticky;top:0}
th.sorted-asc::after{content:" \\25B2"}th.sorted-desc::after{content:" \\25BC"}
td.l,th.l{text-align:left}
tr.byz td{background:#fdecec}
tr.hl td{background:#fff3c4}
.changed td{background:#fff7d6;font-weight:600}
.badge{display:inline-block;padding:0 6px;border-radius:8px;font-size:11px;margin:1px;
 background:#e3f1e3;color:#225522}
.badge.bad{background:#fbe0e0;color:#8a1f1f}.badge.warn{background:#fff1cc;color:#7a5500}
.note{color:#5b6b7c;font-size:12px}
.fig{max-width:100%;height:auto}
svg .peerline{opacity:0;transition:opacity .15s}
body.show-peers svg .peerline,svg .peerline.byz{opacity:1}
svg .peerline.hl{opacity:1}svg .peerline.hl path{stroke-width:3px!important;stroke:#f0a500!important}
svg g.node{cursor:pointer}svg g.node.hl path{stroke:#f0a500!important;stroke-width:4px!important}
details summary{cursor:pointer;font-weight:600}
.scroll{overflow:auto;max-height:560px}
"""

SCRIPT = """
(function(){
  var b=document.body, t=document.getElementById('toggle-peers');
  if(t)t.addEventListener('change',function(){b.classList.toggle('show-peers',t.checked);});
  function mark(p,on){
    document.querySelectorAll('[data-line-peer="'+p+'"],[data-peer="'+p+'"],[data-row-peer="'+p+'"]')
      .forEach(function(e){e.classList.toggle('hl',on);});
  }
  document.querySelectorAll('[data-peer],[data-row-peer]').forEach(function(e){
    var p=e.getAttribute('data-peer')||e.getAttribute('data-row-peer');
    e.addEventListener('mouseenter',function(){mark(p,true);});
    e.addEventListener('mouseleave',function(){mark(p,false);});
  });
  document.querySelectorAll('table.sortable').forEach(function(tab){
    tab.querySelectorAll('th').forEach(function(th,i){
      th.addEventListener('click',function(){
        var asc=!th.classList.contains('sorted-asc');
        tab.querySelectorAll('th').forEach(function(h){h.classList.remove('sorted-asc','sorted-desc');});
        th.classList.add(asc?'sorted-asc':'sorted-desc');
        var body=tab.tBodies[0], rows=Array.prototype.slice.call(body.rows);
        rows.sort(function(a,c){
          var x=a.cells[i].getAttribute('data-v'), y=c.cells[i].getAttribute('data-v');
          var nx=parseFloat(x), ny=parseFloat(y), r;
          if(!isNaN(nx)&&!isNaN(ny)) r=nx-ny; else if(isNaN(nx)&&isNaN(ny)) r=(x||'').localeCompare(y||'');
          else r=isNaN(nx)?1:-1;
          return asc?r:-r;});
        rows.forEach(function(r){body.appendChild(r);});
      });
    });
  });
})();
"""

# Nothing may be fetched: inline styles and scripts, images as data: URLs only.
CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "img-src data:; font-src data:")


def esc(v):
    return html.escape(str(v), quote=True)


def fmt(v, f="%.4f"):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return "{:,}".format(v)
    if isinstance(v, float):
        return f % v
    return str(v)


def sci(v):
    return fmt(v, "%.3g")


def cell(v, f="%.4f", cls=""):
    """A table cell whose sort key is the raw value."""
    key = "" if v is None else (v if isinstance(v, (int, float)) else str(v))
    return '<td%s data-v="%s">%s</td>' % (' class="%s"' % cls if cls else "", esc(key),
                                         esc(fmt(v, f)))


def table(head, rows, cls="sortable"):
    """head: [(label, left-aligned?)]; rows: [(tr attributes, [cell html])]."""
    th = "".join('<th class="%s">%s</th>' % ("l" if left else "", esc(h)) for h, left in head)
    body = "".join("<tr%s>%s</tr>" % (attrs, "".join(cells)) for attrs, cells in rows)
    return '<table class="%s"><thead><tr>%s</tr></thead><tbody>%s</tbody></table>' % (
        cls, th, body)


def curves_svg(run, key, label, name, log=False):
    svg = figures.curves(run, key, label, name, log)
    byz = set(run.byzantine)

    def sub(m):
        pid = int(m.group(2))
        return '<g id="%s" class="peerline%s" data-line-peer="%d">' % (
            m.group(1), " byz" if pid in byz else "", pid)
    return re.sub(r'<g id="([a-z]+-peer-(\d+))">', sub, svg)


def drops_total(r):
    return sum(((r or {}).get("drops") or {}).values())


def header_kv(run):
    s = run.summary
    m = s.get("machine") or {}
    load = ""
    if m.get("load_start"):
        load = "load %s at start, %s at the end" % (
            " ".join("%.2f" % x for x in m["load_start"]),
            " ".join("%.2f" % x for x in m.get("load_end") or []))
    topo = run.topo
    degs = [len(p.get("neighbors", [])) for p in topo["peers"]]
    byz = ", ".join("%d (%s)" % (p, run.peers[p].get("attack") or "?") for p in run.byzantine)
    rows = [
        ("command", "<code>%s</code>" % esc(" ".join(s.get("command") or ["(not recorded)"]))),
        ("ohmpeer", esc(s.get("ohmpeer_version", "(not recorded)"))),
        ("machine", esc("%s; %s; %s CPUs, %s MB; %s" % (
            m.get("host", "?"), m.get("system", "?"), m.get("cpus", "?"), m.get("mem_mb", "?"),
            load)) if m else "(not recorded)"),
        ("topology", esc("%d peers, %d edges, degree %d-%d, weights %s%s; Byzantine: %s" % (
            topo.get("peer_count", len(topo["peers"])), topo.get("edge_count", 0),
            min(degs or [0]), max(degs or [0]), topo.get("scheme", "?"),
            ", spectral gap %.4g" % topo["spectral_gap"] if topo.get("spectral_gap") else "",
            byz or "none"))),
        ("rounds, wall", esc("%s rounds in %.1f s, exit status %s" % (
            s.get("rounds"), s.get("wall_s") or 0, s.get("exit_status")))),
        ("peers", peer_badges(run)),
    ]
    return '<dl class="kv">%s</dl>' % "".join("<dt>%s</dt><dd>%s</dd>" % r for r in rows)


def peer_badges(run):
    codes = run.summary.get("exit_codes") or {}
    out = []
    for pid in sorted(run.peers):
        st = run.state(pid)
        cls = "" if st == "finished" else ("warn" if st in ("killed", "stopped") else "bad")
        code = codes.get(str(pid))
        out.append('<span class="badge %s" title="peer %d: %s, exit %s">%d %s</span>' % (
            cls, pid, esc(st), esc(code), pid, esc(st if st != "finished" else "ok")))
    return "".join(out)


def headline(run):
    s = run.summary
    acc = s.get("honest_acc_mean")
    txt = "honest accuracy %s (min %s, max %s) over %s of %s honest peers" % (
        fmt(acc), fmt(s.get("honest_acc_min")), fmt(s.get("honest_acc_max")),
        s.get("honest_finished", "?"), s.get("honest_peers", "?"))
    if s.get("consensus_distance") is not None:
        txt += "; consensus distance %s" % sci(s["consensus_distance"])
    en = s.get("energy_j")
    if en and s.get("analog_counters"):
        txt += "; energy estimate %s J (analog %s J)" % (sci(en["total"]), sci(en["analog"]))
    elif en:
        txt += "; no analog tiles (network energy estimate %s J)" % sci(en["network"])
    return esc(txt)


def peer_table(run):
    en = (run.summary.get("energy_j") or {}).get("per_peer_parts") or {}
    head = [("peer", False), ("role", True), ("state", True), ("test acc", False),
            ("test loss", False), ("train loss", False), ("rounds skipped", False),
            ("timed out", False), ("drops", False), ("drops by reason", True),
            ("bytes sent", False), ("bytes recv", False), ("RSS MB", False),
            ("round ms", False)]
    if en:
        head.append(("analog J (est.)", False))
    rows = []
    for pid in sorted(run.peers):
        r = run.final.get(pid) or {}
        p = run.peers[pid]
        byz = pid in run.byzantine
        role = "byzantine (%s)" % p.get("attack") if byz else "honest"
        reasons = ", ".join("%s %d" % kv for kv in sorted((r.get("drops") or {}).items()))
        rss = r.get("rss_max_kb")
        cells = [cell(pid), cell(role, cls="l"), cell(run.state(pid), cls="l"),
                 cell(run.final_acc(pid)), cell(r.get("test_loss")), cell(r.get("train_loss")),
                 cell(r.get("rounds_skipped")), cell(r.get("rounds_timed_out")),
                 cell(drops_total(r) if r else None), cell(reasons or "", cls="l"),
                 cell(r.get("bytes_sent")), cell(r.get("bytes_recv")),
                 cell(rss / 1024.0 if isinstance(rss, (int, float)) and rss > 0 else None,
                      "%.1f"),
                 cell(r.get("round_ms_median"), "%.2f")]
        if en:
            parts = en.get(str(pid)) or {}
            cells.append(cell(sum(v for k, v in parts.items() if k != "network") if parts
                              else None, "%.3g"))
        rows.append((' data-row-peer="%d"%s' % (pid, ' class="byz"' if byz else ""), cells))
    return table(head, rows)


def energy_section(run, name="energy"):
    s = run.summary
    en = s.get("energy_j")
    # The panel is about the tiles; a digital run's network estimate is in the header.
    if not run.has_analog():
        return ""
    out = ["<section id=\"energy\"><h2>Pulses and energy</h2>"]
    if en:
        lat = s.get("analog_latency_s") or {}
        parts = en.get("parts") or {}
        out.append('<p><b>Estimates</b> from the [energy] constants, not measurements '
                   '(docs/energy.md): %s J in all: analog %s J (reads %s, pulses %s, ADC %s, '
                   'DAC %s), network %s J; evaluations (not counted) %s J. Analog latency %s s '
                   'on the busiest peer, %s s summed over peers.</p>' % tuple(
                       esc(sci(x)) for x in (en["total"], en["analog"], parts.get("reads"),
                                             parts.get("pulses"), parts.get("adc"),
                                             parts.get("dac"), en["network"],
                                             en.get("evaluation"), lat.get("max"),
                                             lat.get("total"))))
        if en.get("note"):
            out.append('<p class="note"><b>Note:</b> %s</p>' % esc(en["note"]))
        consts = s.get("energy_constants") or {}
        out.append('<p class="note">constants: %s</p>' % esc(", ".join(
            "%s = %g" % kv for kv in sorted(consts.items()))))
    out.append('<div class="grid"><div>')
    if en:
        out.append(figures.energy_parts(run, name))
    out.append("</div><div class=\"scroll\">")
    head = [("peer", False), ("update pulses", False), ("program pulses", False),
            ("train slots", False), ("program slots", False), ("fwd reads", False),
            ("bwd reads", False), ("transfer reads", False), ("eval reads", False),
            ("DAC", False), ("ADC", False), ("cells programmed", False),
            ("latency s (est.)", False)]
    lat = (s.get("analog_latency_s") or {}).get("per_peer") or {}
    rows = []
    tiles = {}
    for pid in sorted(run.peers):
        a = (run.final.get(pid) or {}).get("analog")
        if not a:
            continue
        ev = a.get("eval") or {}
        rows.append((' data-row-peer="%d"%s' % (pid, ' class="byz"' if pid in run.byzantine
                                                else ""),
                     [cell(pid)] + [cell(a.get(k)) for k in (
                         "update_pulses", "program_pulses", "train_slots", "program_slots",
                         "forward_mvms", "backward_mvms", "transfer_mvms")] +
                     [cell(ev.get("forward_mvms")), cell(a.get("dac")), cell(a.get("adc")),
                      cell(a.get("cells_programmed")), cell(lat.get(str(pid)), "%.3g")]))
        for t in a.get("per_tile") or []:
            agg = tiles.setdefault(t["layer"], {"kind": t["kind"], "shape": "%dx%d" % (
                t["rows"], t["cols"])})
            for k, v in t.items():
                if isinstance(v, int) and k not in ("layer", "rows", "cols"):
                    agg[k] = agg.get(k, 0) + v
    out.append(table(head, rows))
    out.append("</div></div>")
    if tiles:
        keys = ["update_pulses", "program_pulses", "train_slots", "line_pulses", "program_slots",
                "forward_mvms", "backward_mvms", "transfer_mvms", "dac", "adc",
                "cells_programmed"]
        out.append("<h3>Per tile, summed over the peers (counts include evaluation reads)</h3>")
        out.append(table([("layer", False), ("kind", True), ("rows x cols", True)] +
                         [(k.replace("_", " "), False) for k in keys],
                         [("", [cell(l), cell(t["kind"], cls="l"), cell(t["shape"], cls="l")] +
                           [cell(t.get(k)) for k in keys]) for l, t in sorted(tiles.items())]))
    out.append("</section>")
    return "".join(out)


def config_section(run):
    rows = run.summary.get("config_resolved") or []
    if not rows:
        sets = run.summary.get("set") or []
        return ('<section><h2>Configuration</h2><p>config file: %s; overrides: %s</p></section>'
                % (esc(run.summary.get("config") or "none"),
                   esc(" ".join(sets) or "none")))

    def changed(r):
        a, b = r["value"], r["default"]
        try:
            return float(a) != float(b)
        except ValueError:
            return a != b
    ch = [r for r in rows if changed(r)]
    body = [(' class="changed"', [cell(r["key"], cls="l"), cell(r["value"], cls="l"),
                                  cell(r["default"], cls="l")]) for r in ch]
    body += [("", [cell(r["key"], cls="l"), cell(r["value"], cls="l"),
                   cell(r["default"], cls="l")]) for r in rows if not changed(r)]
    return ('<section><details><summary>Configuration: %d of %d keys differ from the defaults '
            '(highlighted, first): %s</summary><div class="scroll">%s</div></details></section>'
            % (len(ch), len(rows), esc(", ".join("%s = %s" % (r["key"], r["value"])
                                                 for r in ch)),
               table([("key", True), ("value", True), ("default", True)], body)))


def run_body(run):
    """Everything about one run, below its header."""
    out = ['<section><h2>Accuracy and loss</h2><label><input type="checkbox" id="toggle-peers"> '
           "show every peer's line</label> <span class=\"note\">(or point at a peer in the "
           "graph or the table)</span><div class=\"grid\"><div>%s</div><div>%s</div></div>"
           % (curves_svg(run, "test_acc", "test accuracy", "acc"),
              curves_svg(run, "train_loss", "train loss", "loss", log=True))]
    out.append("</section>")
    out.append('<section><div class="grid"><div><h2>Topology</h2>%s<p class="note">node colour: '
               'final test accuracy; red ring and B: Byzantine; edge width: combination weight; '
               'edge colour: messages dropped.</p></div><div><h2>Round time per peer</h2>%s'
               '%s</div></div></section>' % (
                   graph.draw(run), figures.time_split(run),
                   ("<h2>Consensus distance</h2>" + figures.consensus(run)) if run.consensus
                   else '<p class="note">consensus distance not recorded (ohm-launch '
                        '--consensus records it)</p>'))
    out.append('<section><h2>Peers</h2><div class="scroll">%s</div></section>' % peer_table(run))
    out.append(energy_section(run))
    out.append(config_section(run))
    return "".join(out)


def page(title, subtitle, body, versions):
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta http-equiv="Content-Security-Policy" content="%s">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<title>%s</title><style>%s</style></head><body>'
            '<header><h1>%s</h1><div class="sub">%s</div></header><main>%s'
            '<p class="note">Written by ohm-report (%s). Self-contained: nothing is fetched.</p>'
            '</main><script>%s</script></body></html>\n' % (
                CSP, esc(title), CSS, esc(title), subtitle, body, esc(versions), SCRIPT))


def single(run, versions):
    body = "<section><h2>Run</h2>%s</section>%s" % (header_kv(run), run_body(run))
    return page("ohmpeer run %s" % run.label, headline(run), body, versions)


def comparison(runs, versions):
    rows = []
    for i, run in enumerate(runs):
        s = run.summary
        en = s.get("energy_j") or {}
        rows.append(("", [cell(i), cell(run.label, cls="l"), cell(len(run.peers)),
                          cell(len(run.byzantine)), cell(s.get("rounds")),
                          cell(run.config_value("aggregate.rule"), cls="l"),
                          cell(run.config_value("optimizer.name"), cls="l"),
                          cell(s.get("honest_acc_mean")), cell(s.get("honest_acc_min")),
                          cell(s.get("honest_acc_max")), cell(s.get("consensus_distance"), "%.3g"),
                          cell(s.get("round_ms_median"), "%.2f"), cell(s.get("wall_s"), "%.1f"),
                          cell(en.get("analog") if run.has_analog() else None, "%.3g"),
                          cell(en.get("network"), "%.3g"),
                          cell(s.get("exit_status"))]))
    head = [("#", False), ("run", True), ("peers", False), ("Byzantine", False), ("rounds", False),
            ("rule", True), ("optimizer", True), ("honest acc", False), ("min", False),
            ("max", False), ("consensus", False), ("round ms", False), ("wall s", False),
            ("analog J (est.)", False), ("network J (est.)", False), ("exit", False)]
    body = ['<section><h2>%d runs side by side</h2><div class="scroll">%s</div></section>' % (
        len(runs), table(head, rows))]
    body.append('<section><h2>Honest mean per run</h2><div class="grid"><div>%s</div><div>%s'
                '</div></div></section>' % (
                    figures.overlay(runs, "test_acc", "test accuracy", "cacc"),
                    figures.overlay(runs, "train_loss", "train loss", "closs", log=True)))
    for i, run in enumerate(runs):
        body.append('<section><details><summary>#%d %s: %s</summary>%s<section>%s</section>'
                    '<div class="scroll">%s</div>%s</details></section>' % (
                        i, esc(run.label), headline(run), header_kv(run),
                        graph.draw(run, "graph%d" % i), peer_table(run), energy_section(run, "energy%d" % i)))
    sub = esc("%d runs: %s" % (len(runs), ", ".join(r.label for r in runs)))
    return page("ohmpeer comparison of %d runs" % len(runs), sub, "".join(body), versions)
