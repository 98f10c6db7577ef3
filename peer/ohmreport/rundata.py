"""What a run folder holds, read into one object (the standard library only).

A run folder (ohm-launch --out) has summary.json, topology.json, the peers'
metrics (peer-<id>.jsonl: one line per evaluated round and a final line, the
fields of docs/usage.md "Outputs") and, with --consensus, consensus.csv. Older
folders without topology.json are read through `ohmtopo show --json` when the
ohmtopo program can be found.
"""

import csv
import glob
import json
import math
import os
import re
import shutil
import subprocess


class RunError(Exception):
    """A run folder that cannot be reported; the text says why."""


def _num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)


def _read_jsonl(path):
    rows = []
    with open(path, errors="replace") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except ValueError:
                # A line cut by a crash is the last one: say so, keep the rest.
                rows.append({"_bad_line": n})
    return [r for r in rows if "_bad_line" not in r]


def _topology(run_dir, summary):
    path = os.path.join(run_dir, "topology.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    topo = os.path.join(run_dir, "topology.topo")
    ohmtopo = os.environ.get("OHMTOPO") or summary.get("ohmtopo") or shutil.which("ohmtopo")
    if not os.path.exists(topo) or not ohmtopo or not os.path.exists(ohmtopo):
        raise RunError("%s: no topology.json (and no ohmtopo to read topology.topo)" % run_dir)
    r = subprocess.run([ohmtopo, "show", "--json", topo], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True)
    if r.returncode != 0:
        raise RunError("ohmtopo show %s: %s" % (topo, r.stderr.strip()))
    return json.loads(r.stdout)


class Run:
    """One run folder: summary, topology, each peer's metric rows and final line."""

    def __init__(self, run_dir, label=None):
        self.dir = os.path.abspath(run_dir)
        self.label = label or os.path.basename(self.dir.rstrip("/"))
        spath = os.path.join(self.dir, "summary.json")
        try:
            with open(spath) as f:
                self.summary = json.load(f)
        except OSError as e:
            raise RunError("%s: %s (not a finished ohm-launch run folder?)" % (spath, e.strerror))
        except ValueError as e:
            raise RunError("%s: unreadable JSON: %s" % (spath, e))
        self.topo = _topology(self.dir, self.summary)
        self.peers = {p["id"]: p for p in self.topo["peers"]}
        self.rows = {}
        for path in glob.glob(os.path.join(self.dir, "peer-*.jsonl")):
            m = re.match(r"^peer-(\d+)\.jsonl$", os.path.basename(path))
            if m and int(m.group(1)) in self.peers:
                self.rows[int(m.group(1))] = _read_jsonl(path)
        self.final = {pid: next((r for r in reversed(self.rows.get(pid, [])) if r.get("final")),
                                None) for pid in self.peers}
        self.byzantine = sorted(pid for pid, p in self.peers.items() if p["role"] == "byzantine")
        self.consensus = self._consensus()

    def _consensus(self):
        """{round: mean squared distance} from consensus.csv, or from summary.json."""
        path = os.path.join(self.dir, "consensus.csv")
        out = {}
        if os.path.exists(path):
            with open(path) as f:
                for r in csv.DictReader(f):
                    if r.get("peer") == "mean":
                        out[int(r["round"])] = float(r["dist_sq"])
        if not out:
            for k, v in (self.summary.get("consensus_distance_by_round") or {}).items():
                out[int(k)] = v
        return dict(sorted(out.items()))

    # ---- series ---------------------------------------------------------------

    def series(self, pid, key):
        """[(round, value)] of `key` in peer pid's metric lines (numbers only)."""
        return [(int(r["round"]), r[key]) for r in self.rows.get(pid, [])
                if _num(r.get(key)) and "round" in r]

    def honest_band(self, key):
        """[(round, mean, min, max, n)] over the honest peers reporting `key`."""
        by = {}
        for pid, p in self.peers.items():
            if p["role"] == "byzantine":
                continue
            for rnd, v in self.series(pid, key):
                by.setdefault(rnd, []).append(v)
        return [(k, sum(v) / len(v), min(v), max(v), len(v)) for k, v in sorted(by.items())]

    def final_acc(self, pid):
        r = self.final.get(pid)
        v = r.get("test_acc") if r else None
        return v if _num(v) else None

    def state(self, pid):
        return (self.summary.get("status") or {}).get(str(pid), "unknown")

    def edges(self):
        """[(a, b, weight, drops)] for each undirected edge: the mean of the two
        combination weights, and the messages either side dropped from the other."""
        seen = {}
        for pid, p in self.peers.items():
            for nb, w in zip(p.get("neighbors", []), p.get("weights", [])):
                key = (min(pid, nb), max(pid, nb))
                e = seen.setdefault(key, {"w": [], "drops": 0, "missed": 0})
                e["w"].append(w)
                fin = self.final.get(pid) or {}
                nbs = (fin.get("neighbours") or {}).get(str(nb)) or {}
                e["drops"] += sum((nbs.get("drops") or {}).values())
                e["missed"] += nbs.get("missed", 0)
        return [(a, b, sum(e["w"]) / len(e["w"]), e["drops"], e["missed"])
                for (a, b), e in sorted(seen.items())]

    def has_analog(self):
        return any((r or {}).get("analog") for r in self.final.values())

    def config_value(self, key, default=None):
        for r in self.summary.get("config_resolved") or []:
            if r["key"] == key:
                return r["value"]
        for s in self.summary.get("set") or []:
            if s.startswith(key + "="):
                return s.split("=", 1)[1]
        return default
