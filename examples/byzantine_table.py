#!/usr/bin/env python3
"""Helpers of examples/byzantine-table.sh (standard library only).

    byzantine_table.py paper-topo SRC DST PORT ATTACK   the authors' graph for one attack:
        ports from PORT, ATTACK on the Byzantine peers, b = each peer's count of
        Byzantine neighbours; ATTACK "none": the honest subgraph, relabelled
        0..H-1 in id order (its own Metropolis weights), every b = 0
    byzantine_table.py oracle-b ATTACKED DST            b=<Byzantine neighbours> on DST's peers
    byzantine_table.py collect RUNDIR EXCLUDE LAST MODEL PARTITION RULE ATTACK SETTING ROUNDS B
                                                        the results.csv line of a run
    byzantine_table.py header                           the results.csv header
    byzantine_table.py table CSV RULES ATTACKS DST      DST (markdown) from results.csv
    byzantine_table.py compare DST DIR...               the results of several tables side by side

Topology lines are parsed the way ohmpeer reads them: a '#' starts a comment
only at the start of a line or after a blank (Z85 keys may contain '#').
"""

import csv
import json
import os
import re
import sys

COMMENT_RE = re.compile(r"(^|\s)#.*$")

HEADER = ("model,partition,rule,attack,acc,acc_final,acc_min,acc_max,setting,rounds,b,last,"
          "status,honest,byz_rows,byz_dropped,discarded,rss_max_kb,wall_s,dir")
SCREENING = ("faba", "ios", "krum", "multi-krum")


def body(line):
    return COMMENT_RE.sub("", line).split()


def read_topo(path):
    """(peers {id: tokens after the id}, edges [(i, j, rest)], other lines)."""
    peers, edges, other = {}, [], []
    for line in open(path):
        t = body(line)
        if not t:
            continue
        if t[0] == "peer" and len(t) >= 3:
            peers[int(t[1])] = t[2:]
        elif t[0] == "edge" and len(t) >= 3:
            edges.append((int(t[1]), int(t[2]), t[3:]))
        else:
            other.append(" ".join(t))
    return peers, edges, other


def byzantine_ids(peers):
    return {i for i, t in peers.items() if "role=byzantine" in t}


def neighbours(edges):
    nb = {}
    for i, j, _ in edges:
        nb.setdefault(i, set()).add(j)
        nb.setdefault(j, set()).add(i)
    return nb


def paper_topo(src, dst, port, attack):
    peers, edges, other = read_topo(src)
    byz = byzantine_ids(peers)
    if any(o.startswith("weight ") for o in other) or any(rest for _, _, rest in edges):
        sys.exit("byzantine_table: %s has explicit weights; the honest subgraph would need "
                 "them recomputed" % src)
    out = ["# %s for attack %s (written by examples/byzantine_table.py)" % (src, attack)]
    out += [o for o in other]
    if attack == "none":
        honest = sorted(i for i in peers if i not in byz)
        new = {old: k for k, old in enumerate(honest)}
        for old in honest:
            out.append("peer %d tcp://127.0.0.1:%d b=0" % (new[old], port + new[old]))
        for i, j, _ in edges:
            if i in new and j in new:
                out.append("edge %d %d" % (new[i], new[j]))
    else:
        nb = neighbours(edges)
        for i in sorted(peers):
            if i in byz:
                out.append("peer %d tcp://127.0.0.1:%d role=byzantine attack=%s" % (i, port + i,
                                                                                      attack))
            else:
                out.append("peer %d tcp://127.0.0.1:%d b=%d" % (i, port + i,
                                                               len(nb.get(i, set()) & byz)))
        for i, j, _ in edges:
            out.append("edge %d %d" % (i, j))
    open(dst, "w").write("\n".join(out) + "\n")


def oracle_b(att, dst):
    peers, edges, _ = read_topo(att)
    byz, nb = byzantine_ids(peers), neighbours(edges)
    lines = []
    for line in open(dst):
        t = body(line)
        if len(t) >= 2 and t[0] == "peer":
            line = line.rstrip("\n") + " b=%d\n" % len(nb.get(int(t[1]), set()) & byz)
        lines.append(line)
    open(dst, "w").writelines(lines)


def collect(rundir, exclude_topo, last, fixed):
    """The results.csv line of a run; fixed = model, partition, rule, attack,
    setting, rounds, b. acc: mean over the honest peers of each one's mean test
    accuracy over its last `last` evaluations (%); acc_final, acc_min, acc_max:
    the final evaluation (full test set). Peers that are Byzantine in
    exclude_topo are left out; byz_rows, byz_dropped, discarded and
    rss_max_kb (the largest) add up the honest peers' final metrics."""
    model, part, rule, attack, setting, rounds, b = fixed
    head = "%s,%s,%s,%s" % (model, part, rule, attack)
    tail = "%s,%s,%s,%d" % (setting, rounds, b, last)

    def failed(why):
        return "%s,,,,,%s,failed,,,,,,%s,%s" % (head, tail, why, rundir)

    peers, _, _ = read_topo(exclude_topo)
    byz = byzantine_ids(peers)
    try:
        s = json.load(open(os.path.join(rundir, "summary.json")))
    except (OSError, ValueError):
        return failed("")
    accs, finals = [], []
    rows = dropped = disc = rss = 0
    for pid in range(s.get("peers", 0)):
        if pid in byz:
            continue
        path = os.path.join(rundir, "peer-%d.jsonl" % pid)
        try:
            lines = [json.loads(l) for l in open(path) if l.strip()]
        except (OSError, ValueError):
            return failed(s.get("wall_s", ""))
        ev = [l["test_acc"] for l in lines if l.get("test_acc") is not None]
        if not ev or not lines[-1].get("final"):
            return failed(s.get("wall_s", ""))
        accs.append(sum(ev[-last:]) / len(ev[-last:]))
        finals.append(ev[-1])
        f = lines[-1]
        rows += f.get("rule_byz_rows", 0)
        dropped += f.get("rule_byz_dropped", 0)
        disc += f.get("rule_discarded", 0)
        rss = max(rss, f.get("rss_max_kb", 0))
    if not accs:
        return failed(s.get("wall_s", ""))
    return "%s,%.2f,%.2f,%.2f,%.2f,%s,ok,%d,%d,%d,%d,%d,%s,%s" % (
        head, 100 * sum(accs) / len(accs), 100 * sum(finals) / len(finals), 100 * min(finals),
        100 * max(finals), tail, len(accs), rows, dropped, disc, rss, s.get("wall_s", ""), rundir)


def read_csv(path):
    rows = list(csv.DictReader(open(path)))
    if rows and "acc" not in rows[0]:
        sys.exit("byzantine_table: %s is in an older format (no acc column); run the table "
                 "again into a new --out" % path)
    return rows


def fmt(r):
    return "%.1f" % float(r["acc"]) if r["status"] == "ok" and r["acc"] else "fail"


def table(path, rules, attacks, dst):
    rules, attacks = rules.split(","), attacks.split(",")
    cells, groups, info = {}, [], {}
    for r in read_csv(path):
        g = (r["model"], r["partition"], r["setting"])
        if g not in groups:
            groups.append(g)
        cells[g + (r["rule"], r["attack"])] = r
        info.setdefault(g, set()).add((r["rounds"], r["b"], r["last"]))
    part_name = {"iid": "iid", "label": "non-iid (split by label)", "dirichlet": "Dirichlet"}
    out = []
    for g in groups:
        model = "softmax regression" if g[0] == "softmax" else "MLP 784-128-10"
        runs = "; ".join("%s rounds, b = %s, mean of the last %s evaluations" % x
                         for x in sorted(info[g]))
        out += ["### %s, %s, %s setting" % (model, part_name.get(g[1], g[1]), g[2]), "",
                "Honest mean test accuracy (%%): %s." % runs, "",
                "| rule | " + " | ".join(attacks) + " |", "|---|" + "---:|" * len(attacks)]
        for rule in rules:
            out.append("| %s | " % rule + " | ".join(
                fmt(cells[g + (rule, a)]) if g + (rule, a) in cells else "" for a in attacks) + " |")
        shown = [rule for rule in rules if rule in SCREENING]
        if shown:
            out += ["", "Screening: share of the Byzantine neighbours' models the rule dropped "
                    "(%), and honest models dropped per honest peer and round.", "",
                    "| rule | " + " | ".join(a for a in attacks if a != "none") + " |",
                    "|---|" + "---:|" * len([a for a in attacks if a != "none"])]
            for rule in shown:
                cs = []
                for a in attacks:
                    if a == "none":
                        continue
                    r = cells.get(g + (rule, a))
                    if not r or r["status"] != "ok" or not int(r["byz_rows"] or 0):
                        cs.append("")
                        continue
                    rows, drop, disc = int(r["byz_rows"]), int(r["byz_dropped"]), int(r["discarded"])
                    per = (disc - drop) / (int(r["honest"]) * int(r["rounds"]))
                    cs.append("%.1f / %.2f" % (100.0 * drop / rows, per))
                out.append("| %s | " % rule + " | ".join(cs) + " |")
        out.append("")
    open(dst, "w").write("\n".join(out))


def compare(dst, dirs):
    runs = [(d, {(r["model"], r["partition"], r["rule"], r["attack"]): r
                 for r in read_csv(os.path.join(d, "results.csv"))}) for d in dirs]
    keys = []
    for _, rs in runs:
        for k in rs:
            if k not in keys:
                keys.append(k)
    attacks = []
    for k in keys:
        if k[3] not in attacks:
            attacks.append(k[3])
    groups = []
    for k in keys:
        if k[:3] not in groups:
            groups.append(k[:3])
    out = ["Each cell: " + " / ".join(os.path.basename(os.path.normpath(d)) for d in dirs)
           + " (honest mean test accuracy, %)", "",
           "| model | partition | rule | " + " | ".join(attacks) + " |",
           "|---|---|---|" + "---:|" * len(attacks)]
    for g in groups:
        cells = []
        for a in attacks:
            vals = [fmt(rs[g + (a,)]) if g + (a,) in rs else "-" for _, rs in runs]
            cells.append(" / ".join(vals))
        out.append("| %s | %s | %s | " % g + " | ".join(cells) + " |")
    text = "\n".join(out) + "\n"
    if dst == "-":
        sys.stdout.write(text)
    else:
        open(dst, "w").write(text)
        sys.stdout.write(text)


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, a = argv[1], argv[2:]
    if cmd == "paper-topo" and len(a) == 4:
        paper_topo(a[0], a[1], int(a[2]), a[3])
    elif cmd == "oracle-b" and len(a) == 2:
        oracle_b(a[0], a[1])
    elif cmd == "collect" and len(a) == 10:
        print(collect(a[0], a[1], int(a[2]), a[3:]))
    elif cmd == "table" and len(a) == 4:
        table(*a)
    elif cmd == "compare" and len(a) >= 2:
        compare(a[0], a[1:])
    elif cmd == "header" and not a:
        print(HEADER)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
