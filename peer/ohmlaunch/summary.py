"""What a run leaves behind: summary.json, summary.md, plots, consensus.csv.

The honest accuracy is averaged over the honest peers that finished; when that
is fewer than all honest peers, both files say so and name the others with
what became of them (failed with its last log line, killed, stopped).
"""

import json
import os
import re
import shutil
import subprocess
from array import array


def mean(xs):
    return sum(xs) / len(xs) if xs else float("nan")


def last_log_line(out, pid):
    """The last non-empty line of OUT/peer-<id>.log, or ''."""
    try:
        with open(os.path.join(out, "peer-%d.log" % pid), errors="replace") as f:
            lines = [l.strip() for l in f.read().splitlines() if l.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def failed_how(p):
    """'exit 1' or 'exit 1 after 2 restarts'."""
    after = " after %d restart%s" % (p.restarts, "s" if p.restarts > 1 else "") \
        if p.restarts else ""
    return "exit %s%s" % (p.exit, after)


def fate(p):
    """What became of a peer that did not finish, in words."""
    if p.state == "waiting":
        return "never started"
    if p.state == "failed":
        return "failed (%s)" % failed_how(p)
    if p.state == "killed":
        return "killed at round %s (--kill), not restarted" % p.killed_at
    if p.state == "stopped":
        return "stopped by the launcher at round %d" % p.round
    return p.state


def time_to_target(peers, target):
    """Seconds after the launch at which the mean over the honest peers of
    their latest evaluated accuracy first reached `target` (a peer not yet
    evaluated counts 0; a peer that left keeps its last one); None if never.
    Time-based, so a run whose peers move at different speeds (asynchronous
    mode, a straggler) is judged by the clock, not by round numbers."""
    events = []
    honest = [p for p in peers.values() if not p.byzantine]
    for p in honest:
        if p.started_at is None:
            continue
        for r in p.rows:
            if r.get("test_acc") is not None and "wall_s" in r:
                events.append((p.started_at + r["wall_s"], p.pid, r["test_acc"]))
    latest = {p.pid: 0.0 for p in honest}
    for t, pid, acc in sorted(events):
        latest[pid] = acc
        if latest and sum(latest.values()) / len(latest) >= target:
            return round(t, 3)
    return None


def build(out, peers, rounds, outcome, exit_status, args, extra=None):
    """The summary as a dict (summary.json) and the markdown lines (summary.md)."""
    honest = [p for p in peers.values() if not p.byzantine]
    final = {p.pid: p.final_row() for p in peers.values()}
    # A peer that left (train.leave_at) finished cleanly but not the run: it is
    # listed apart and not averaged with the others.
    left = [p for p in honest if p.state == "finished" and final[p.pid]
            and final[p.pid].get("left")]
    done = [p for p in honest if p.state == "finished" and final[p.pid]
            and final[p.pid].get("test_acc") is not None and p not in left]
    accs = {p.pid: final[p.pid]["test_acc"] for p in done}
    vals = list(accs.values())
    finals = [r for r in final.values() if r]
    failed = [{"peer": p.pid, "exit": p.exit, "restarts": p.restarts,
               "last_log_line": last_log_line(out, p.pid)}
              for p in sorted(peers.values(), key=lambda q: q.pid) if p.state == "failed"]
    summary = {
        "rounds": rounds,
        "peers": len(peers),
        "honest_peers": len(honest),
        "honest_finished": len(done),
        "byzantine": sorted(p.pid for p in peers.values() if p.byzantine),
        "honest_acc_mean": mean(vals) if vals else None,
        "honest_acc_min": min(vals) if vals else None,
        "honest_acc_max": max(vals) if vals else None,
        "finished": sorted(pid for pid, r in final.items() if r and peers[pid].state == "finished"),
        "failed_peers": failed,
        "status": {str(p.pid): p.state for p in sorted(peers.values(), key=lambda q: q.pid)},
        "kills": [{"peer": p.pid, "round": p.killed_at, "restarts": p.restarts}
                  for p in sorted(peers.values(), key=lambda q: q.pid) if p.killed_at is not None],
        "left_peers": [{"peer": p.pid, "round": final[p.pid].get("round"),
                        "acc": final[p.pid].get("test_acc")} for p in left],
        "joined_peers": [{"peer": p.pid, "after_s": p.start_after,
                          "joined_from": (final[p.pid] or {}).get("joined_from")}
                         for p in sorted(peers.values(), key=lambda q: q.pid)
                         if p.start_after > 0],
        "exit_status": exit_status,
        "wall_s": round(outcome.wall, 3),
        "final_acc": {str(k): v for k, v in sorted(accs.items())},
        "round_ms_median": mean([r["round_ms_median"] for r in finals
                                 if "round_ms_median" in r]) if finals else None,
        "rss_max_kb": max([r.get("rss_max_kb", 0) for r in finals] or [0]),
        "bytes_sent": sum(r.get("bytes_sent", 0) for r in finals),
        "bytes_recv": sum(r.get("bytes_recv", 0) for r in finals),
        "msgs_dropped": sum(r.get("msgs_dropped", 0) for r in finals),
        "topology": args.topology,
        "config": args.config,
        "set": args.set,
    }
    if summary["round_ms_median"] != summary["round_ms_median"]:  # NaN: nobody timed
        summary["round_ms_median"] = None
    summary.update(extra or {})

    rows = ["| peer | role | final test acc | train loss | round ms (median) | drops | RSS MB |",
            "|---:|---|---:|---:|---:|---:|---:|"]
    for pid in sorted(peers):
        p, r = peers[pid], final[pid]
        role = "byzantine (%s)" % p.info["attack"] if p.byzantine else "honest"
        if r and p.state == "finished":
            def fmt(key, f="%.4f"):
                v = r.get(key)
                return f % v if isinstance(v, (int, float)) else "-"
            rows.append("| %d | %s | %s | %s | %s | %s | %.1f |" % (
                pid, role, fmt("test_acc"), fmt("train_loss"), fmt("round_ms_median", "%.2f"),
                r.get("msgs_dropped", 0), r.get("rss_max_kb", 0) / 1024.0))
        else:
            rows.append("| %d | %s | %s | | | | |" % (pid, role, fate(p)))
    stats = ", ".join("%s %s" % (k, ("%.4f" % summary["honest_acc_" + k])
                                 if summary["honest_acc_" + k] is not None else "-")
                      for k in ("mean", "min", "max"))
    if len(done) == len(honest):
        over = "over %d honest peers" % len(honest)
    else:
        groups = {}  # the stopped ones are many and alike: one group
        for p in honest:
            if p not in done:
                key = "stopped by the launcher" if p.state == "stopped" else (
                    "left at round %s" % final[p.pid].get("round") if p in left else fate(p))
                groups.setdefault(key, []).append(p.pid)
        over = "over %d of %d honest peers (%s)" % (len(done), len(honest), "; ".join(
            "peer%s %s %s" % ("s" if len(ids) > 1 else "", " ".join(map(str, ids)), why)
            for why, ids in groups.items()))
    head = "honest accuracy: %s %s; %d rounds in %.1f s" % (stats, over, rounds, outcome.wall)
    en = summary.get("energy_j")
    if en and summary.get("analog_counters"):
        head += ("\nenergy (estimate from [energy], docs/energy.md): %.3g J in all; analog %.3g J "
                 "(latency %.3g s on the busiest peer), network %.3g J" % (
                     en["total"], en["analog"], summary["analog_latency_s"]["max"], en["network"]))
    elif en:
        head += ("\nenergy (estimate from [energy], docs/energy.md): no analog tiles; network "
                 "%.3g J" % en["network"])
    notes = ["peer %d %s: %s" % (p.pid, fate(p), last_log_line(out, p.pid) or "(empty log)")
             for p in sorted(peers.values(), key=lambda q: q.pid) if p.state == "failed"]
    return summary, head, notes, rows


def write(out, summary, head, notes, rows):
    """summary.json and summary.md into OUT."""
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(head + "\n\n")
        if notes:
            f.write("\n".join("**%s**" % n.replace("|", "\\|") for n in notes) + "\n\n")
        f.write("\n".join(rows) + "\n")


def honest_mean_curve(peers, key):
    """[(round, mean, n)] of `key` over the honest peers that reported it at that
    round: the honest mean the summary quotes, per evaluated round."""
    by = {}
    for p in peers.values():
        if p.byzantine:
            continue
        for r in p.rows:
            v = r.get(key)
            if isinstance(v, (int, float)) and v == v:
                by.setdefault(int(r.get("round", 0)), []).append(v)
    return [(k, sum(v) / len(v), len(v)) for k, v in sorted(by.items())]


def plot(out, peers):
    """PNG plots of test accuracy and train loss per round (needs gnuplot):
    each honest peer a thin grey line, the honest mean a thick line, each
    Byzantine peer in red, with a legend."""
    gp = shutil.which("gnuplot")
    if not gp:
        print("ohm-launch: gnuplot not installed; skipping plots")
        return
    data = os.path.join(out, "curves.dat")
    order = sorted(peers)
    with open(data, "w") as f:
        for pid in order:
            f.write("# peer %d\n" % pid)
            for r in peers[pid].rows:
                acc, loss = r.get("test_acc"), r.get("train_loss")
                f.write("%d %s %s\n" % (r.get("round", 0), acc if acc is not None else "NaN",
                                        loss if loss is not None else "NaN"))
            f.write("\n\n")
        f.write("# honest mean\n")
        acc = dict((k, m) for k, m, _ in honest_mean_curve(peers, "test_acc"))
        loss = dict((k, m) for k, m, _ in honest_mean_curve(peers, "train_loss"))
        for k in sorted(set(acc) | set(loss)):
            f.write("%d %s %s\n" % (k, acc.get(k, "NaN"), loss.get(k, "NaN")))
    mean_index = len(order)
    honest = sum(1 for p in peers.values() if not p.byzantine)

    def curves(col):
        parts, titled = [], False
        for i, pid in enumerate(order):
            if peers[pid].byzantine:
                parts.append("'%s' index %d using 1:%d with lines lw 2 dt 2 lc rgb '#d62728' "
                             "title 'Byzantine peer %d (%s)'" % (data, i, col, pid,
                                                                  peers[pid].info["attack"]))
            else:
                parts.append("'%s' index %d using 1:%d with lines lw 1 lc rgb '#b0b0b0' %s"
                             % (data, i, col, "notitle" if titled else "title 'honest peers'"))
                titled = True
        parts.append("'%s' index %d using 1:%d with lines lw 3 lc rgb '#1f4e9c' "
                     "title 'honest mean (%d peers)'" % (data, mean_index, col, honest))
        return ", \\\n  ".join(parts)

    script = """set terminal pngcairo size 900,600 noenhanced
set key outside right top box
set grid
set xlabel 'round'
set output '{out}/accuracy.png'
set ylabel 'test accuracy'
set title 'test accuracy per peer'
plot {acc}
set output '{out}/loss.png'
set ylabel 'train loss'
set logscale y
set title 'train loss per peer'
plot {loss}
""".format(out=out, acc=curves(2), loss=curves(3))
    r = subprocess.run([gp], input=script, universal_newlines=True, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    if r.returncode != 0:
        print("ohm-launch: gnuplot failed: %s" % r.stderr.strip()[:300])
    else:
        print("plots: %s/accuracy.png %s/loss.png" % (out, out))


def consensus_distances(out, peers, keep=False):
    """Per evaluated round, each honest peer's squared distance to the honest
    average model, from the snapshots peers write with train.snapshots=true.
    Writes consensus.csv (round, peer, dist_sq) and returns {round: mean dist_sq}."""
    snapdir = os.path.join(out, "snapshots")
    if not os.path.isdir(snapdir):
        return {}
    honest = sorted(p.pid for p in peers.values() if not p.byzantine)
    files = {}
    for name in os.listdir(snapdir):
        m = re.match(r"^peer-(\d+)-r(\d+)\.f32$", name)
        if m and int(m.group(1)) in honest:
            files.setdefault(int(m.group(2)), {})[int(m.group(1))] = os.path.join(snapdir, name)
    means = {}
    with open(os.path.join(out, "consensus.csv"), "w") as csv:
        csv.write("round,peer,dist_sq\n")
        for rnd in sorted(files):
            vecs = {}
            for pid, path in sorted(files[rnd].items()):
                a = array("f")
                with open(path, "rb") as f:
                    a.frombytes(f.read())
                vecs[pid] = a
            if len(vecs) < 2 or len({len(v) for v in vecs.values()}) != 1:
                continue
            n = len(vecs)
            avg = [sum(col) / n for col in zip(*vecs.values())]
            dists = []
            for pid, v in vecs.items():
                d = sum((x - y) * (x - y) for x, y in zip(v, avg))
                dists.append(d)
                csv.write("%d,%d,%.9g\n" % (rnd, pid, d))
            means[rnd] = sum(dists) / n
            csv.write("%d,mean,%.9g\n" % (rnd, means[rnd]))
    if not keep:
        shutil.rmtree(snapdir, ignore_errors=True)
    return means
