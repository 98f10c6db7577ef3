"""The topology as a drawing: networkx places the peers, matplotlib draws them
as SVG, and each peer becomes one element the page (and its tests) can find:

    <g id="node-<id>" class="node [byzantine]" data-peer="<id>"
       data-acc="<final test accuracy, or empty>" data-role="honest|byzantine"
       data-state="finished|failed|...">

Nodes are coloured by final accuracy (a colour bar gives the scale),
Byzantine peers get a red ring and a "B"; edges are as wide as their
combination weight and coloured by the messages dropped on them.
"""

import html
import math
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
from matplotlib import cm, colors  # noqa: E402
from matplotlib.patches import Circle  # noqa: E402

from .figures import BYZ, _style, _svg  # noqa: E402


def layout(run):
    """{peer id: (x, y)}: a circle for rings, else a seeded spring layout."""
    g = nx.Graph()
    g.add_nodes_from(run.peers)
    for a, b, w, _, _ in run.edges():
        g.add_edge(a, b, weight=w)
    degrees = {d for _, d in g.degree()}
    if len(g) <= 3 or (degrees == {2} and nx.is_connected(g)):
        # A ring: walk it so that neighbours sit next to each other.
        order = list(nx.cycle_basis(g)[0]) if len(g) > 3 else sorted(g)
        return {
            n: (math.cos(2 * math.pi * i / len(order) + math.pi / 2),
                math.sin(2 * math.pi * i / len(order) + math.pi / 2))
            for i, n in enumerate(order)}
    if degrees == {len(g) - 1}:
        return nx.circular_layout(sorted(g))
    pos = nx.spring_layout(g, seed=1, iterations=200)
    return {n: (float(x), float(y)) for n, (x, y) in pos.items()}


def draw(run, name="graph"):
    """The topology drawing as SVG with one data-peer element per peer."""
    _style()
    pos = layout(run)
    n = len(pos)
    fig, ax = plt.subplots(figsize=(5.6, 5.0))
    ax.set_aspect("equal")
    ax.axis("off")
    edges = run.edges()
    worst = max([e[3] for e in edges] or [0])
    dcmap = colors.LinearSegmentedColormap.from_list("drops", ["#9aa5b1", "#f0a500", BYZ])
    wmax = max([e[2] for e in edges] or [1]) or 1
    for a, b, w, drops, _ in edges:
        (x0, y0), (x1, y1) = pos[a], pos[b]
        c = dcmap(drops / worst) if worst else "#9aa5b1"
        ln, = ax.plot([x0, x1], [y0, y1], color=c, lw=0.6 + 4.0 * w / wmax, zorder=1,
                      solid_capstyle="round")
        ln.set_gid("edge-%d-%d" % (a, b))
    accs = [run.final_acc(p) for p in run.peers if run.final_acc(p) is not None]
    lo, hi = (min(accs), max(accs)) if accs else (0.0, 1.0)
    if hi - lo < 1e-6:
        lo, hi = lo - 0.01, hi + 0.01
    norm = colors.Normalize(vmin=lo, vmax=hi)
    cmap = cm.get_cmap("viridis")
    r = min(0.14, 1.6 / max(n, 1) + 0.03)
    for pid, (x, y) in sorted(pos.items()):
        acc = run.final_acc(pid)
        byz = pid in run.byzantine
        face = cmap(norm(acc)) if acc is not None else "#d9d9d9"
        c = Circle((x, y), r, facecolor=face, edgecolor=BYZ if byz else "#333333",
                   lw=3.0 if byz else 0.8, zorder=3)
        c.set_gid("node-%d" % pid)
        ax.add_patch(c)
        label = "%d" % pid + ("\nB" if byz else "")
        lum = sum(colors.to_rgb(face)[:3]) / 3
        ax.text(x, y, label, ha="center", va="center", fontsize=8 if n <= 32 else 6,
                color="white" if lum < 0.5 else "black", zorder=4,
                gid="label-%d" % pid)
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    ax.set_xlim(min(xs) - 2 * r, max(xs) + 2 * r)
    ax.set_ylim(min(ys) - 2 * r, max(ys) + 2 * r)
    sm = cm.ScalarMappable(norm=norm, cmap=cmap)
    cb = fig.colorbar(sm, ax=ax, shrink=0.6, pad=0.02)
    cb.set_label("final test accuracy")
    if worst:
        sd = cm.ScalarMappable(norm=colors.Normalize(0, worst), cmap=dcmap)
        cb2 = fig.colorbar(sd, ax=ax, shrink=0.6, pad=0.08, location="left")
        cb2.set_label("messages dropped on the edge")
    svg = _svg(fig, name)
    return annotate(svg, run)


def annotate(svg, run):
    """Turns the node groups into the report's peer elements (data-* attributes
    and a tooltip), so the DOM names every peer without running any script."""
    def node(m):
        pid = int(m.group(1))
        acc = run.final_acc(pid)
        byz = pid in run.byzantine
        role = "byzantine" if byz else "honest"
        state = run.state(pid)
        tip = "peer %d (%s%s), %s, final test accuracy %s" % (
            pid, role, ", " + run.peers[pid]["attack"] if byz and run.peers[pid].get("attack")
            else "", state, "%.4f" % acc if acc is not None else "none")
        return ('<g id="node-%d" class="node%s" data-peer="%d" data-acc="%s" data-role="%s" '
                'data-state="%s"><title>%s</title>' % (
                    pid, " byzantine" if byz else "", pid, "%.4f" % acc if acc is not None else "",
                    role, html.escape(state), html.escape(tip)))
    out, count = re.subn(r'<g id="node-(\d+)">', node, svg)
    if count != len(run.peers):
        raise RuntimeError("graph: %d node elements for %d peers" % (count, len(run.peers)))
    return out
