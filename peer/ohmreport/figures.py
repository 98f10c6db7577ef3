"""The report's charts, drawn by matplotlib as SVG to be inlined in the page.

Every figure is an SVG string. Lines the page shows or hides get a group id
(matplotlib's gid): "<prefix>-peer-<id>" for a peer's line, so the page's
script can toggle and highlight them. Ids inside each SVG are salted with the
figure's name, so several SVGs live in one page without clashing.
"""

import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

HONEST = "#1f4e9c"
BAND = "#9db7e0"
PEER = "#6b7b8c"
BYZ = "#d62728"
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#7f7f7f", "#d62728"]
PARTS_COLOURS = {"reads": "#1f77b4", "pulses": "#ff7f0e", "adc": "#2ca02c", "dac": "#9467bd",
                 "network": "#7f7f7f"}


def _style():
    plt.rcParams.update({
        "svg.fonttype": "none",  # text stays text: small, searchable, the page's font
        "font.family": "sans-serif",
        "font.size": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
    })


def _svg(fig, name):
    """The figure as an SVG string without the XML prolog, ids salted by name."""
    plt.rcParams["svg.hashsalt"] = name
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    start = text.find("<svg")
    text = text[start:]
    return text.replace("<svg ", '<svg class="fig" data-fig="%s" ' % name, 1)


def curves(run, key, ylabel, name, log=False):
    """`key` over rounds: the honest mean with its min-max band, each peer as a
    thin line (hidden until toggled or hovered), Byzantine peers in red."""
    _style()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    band = run.honest_band(key)
    drawn = False
    for pid in sorted(run.peers):
        pts = run.series(pid, key)
        if not pts:
            continue
        byz = pid in run.byzantine
        ln, = ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1.6 if byz else 0.8,
                      color=BYZ if byz else PEER, ls="--" if byz else "-", alpha=0.9,
                      label="Byzantine peer %d" % pid if byz else None)
        ln.set_gid("%s-peer-%d" % (name, pid))
        drawn = True
    if band:
        xs = [b[0] for b in band]
        ax.fill_between(xs, [b[2] for b in band], [b[3] for b in band], color=BAND, alpha=0.45,
                        lw=0, label="honest min-max")
        ax.plot(xs, [b[1] for b in band], color=HONEST, lw=2.4,
                label="honest mean (%d peers)" % max(b[4] for b in band))
    if not drawn and not band:
        ax.text(0.5, 0.5, "no %s recorded" % key, ha="center", va="center",
                transform=ax.transAxes)
    ax.set_xlabel("round")
    ax.set_ylabel(ylabel)
    if log and band and min(b[2] for b in band) > 0:
        ax.set_yscale("log")
    if band or run.byzantine:
        _legend(ax, loc="best", fontsize=8, frameon=False)
    return _svg(fig, name)


def _legend(ax, **kw):
    """A legend when something is labelled (matplotlib warns on an empty one)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)


def consensus(run, name="consensus"):
    """The mean squared distance of the honest models to their average."""
    _style()
    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    pts = sorted(run.consensus.items())
    ax.plot([p[0] for p in pts], [p[1] for p in pts], color=HONEST, lw=2, marker="o", ms=3)
    if pts and min(p[1] for p in pts) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("round")
    ax.set_ylabel("consensus distance\n(1/N) sum ||w_i - w_avg||^2")
    return _svg(fig, name)


def time_split(run, name="timesplit"):
    """Each peer's median round time split into compute, wait and combine."""
    _style()
    pids = [pid for pid in sorted(run.peers) if run.final.get(pid)]
    fig, ax = plt.subplots(figsize=(6.4, 0.5 + 0.28 * max(4, len(pids))))
    parts = [("compute_ms_median", "compute", "#2ca02c"), ("wait_ms_median", "wait", "#ff7f0e"),
             ("combine_ms_median", "combine", "#1f77b4")]
    left = [0.0] * len(pids)
    for key, label, colour in parts:
        vals = [(run.final[pid] or {}).get(key) or 0.0 for pid in pids]
        ax.barh(range(len(pids)), vals, left=left, color=colour, label=label, height=0.7)
        left = [a + b for a, b in zip(left, vals)]
    ax.set_yticks(range(len(pids)))
    ax.set_yticklabels(["%d%s" % (p, " (B)" if p in run.byzantine else "") for p in pids])
    ax.invert_yaxis()
    ax.set_xlabel("median ms per round")
    ax.set_ylabel("peer")
    _legend(ax, loc="lower right", fontsize=8, ncol=3, frameon=False)
    return _svg(fig, name)


def energy_parts(run, name="energy"):
    """The estimated analog energy per peer by part (reads, pulses, converters),
    stacked; the network's share is printed apart (it dwarfs the rest)."""
    _style()
    per = ((run.summary.get("energy_j") or {}).get("per_peer_parts")) or {}
    pids = sorted(int(p) for p in per)
    fig, ax = plt.subplots(figsize=(6.4, 0.5 + 0.28 * max(4, len(pids))))
    left = [0.0] * len(pids)
    for part in ("reads", "pulses", "adc", "dac"):
        vals = [per[str(p)].get(part, 0.0) for p in pids]
        if not any(vals):
            continue
        ax.barh(range(len(pids)), vals, left=left, color=PARTS_COLOURS[part], label=part,
                height=0.7)
        left = [a + b for a, b in zip(left, vals)]
    ax.set_yticks(range(len(pids)))
    ax.set_yticklabels(["%d%s" % (p, " (B)" if p in run.byzantine else "") for p in pids])
    ax.invert_yaxis()
    ax.set_xlabel("estimated analog energy, J (network not included)")
    _legend(ax, loc="lower right", fontsize=8, ncol=4, frameon=False)
    return _svg(fig, name)


def overlay(runs, key, ylabel, name, log=False):
    """Several runs: each run's honest mean (and band) in its own colour."""
    _style()
    fig, ax = plt.subplots(figsize=(8.0, 4.2))
    for i, run in enumerate(runs):
        band = run.honest_band(key)
        if not band:
            continue
        c = PALETTE[i % len(PALETTE)]
        xs = [b[0] for b in band]
        ax.fill_between(xs, [b[2] for b in band], [b[3] for b in band], color=c, alpha=0.15, lw=0)
        ln, = ax.plot(xs, [b[1] for b in band], color=c, lw=2, label=run.label)
        ln.set_gid("%s-run-%d" % (name, i))
    ax.set_xlabel("round")
    ax.set_ylabel(ylabel + " (honest mean, band min-max)")
    if log:
        lo = [b[2] for r in runs for b in r.honest_band(key)]
        if lo and min(lo) > 0:
            ax.set_yscale("log")
    n = len(runs)
    _legend(ax, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False,
              ncol=1 if n <= 16 else 2)
    return _svg(fig, name)


def finite(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
