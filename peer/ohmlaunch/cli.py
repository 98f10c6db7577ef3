"""ohm-launch's command line: what to run, then supervise, summarize, exit.

    ohm-launch --topology T [--config C] [--set section.key=value]... --out DIR
               [--insecure] [--kill PEER@ROUND]... [--restart] [--resume] [--plot]
               [--report] [--slow PEER:FACTOR]... [--join PEER@SECONDS]... [--leave PEER@ROUND]...
               [--target-acc A] [--hosts FILE [ssh options]] [--timeout S]

Exit status: 0 when every peer finished (or was killed by --kill and not
restarted); 1 when a peer failed (also after a restart), the run timed out or
could not start; 130 when interrupted (SIGINT/SIGTERM); 2 for usage errors.
docs/usage.md describes the options and the outputs.
"""

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys

from . import energy, summary
from .local import LocalRunner
from .ssh import SetupError, SshRunner
from .supervise import Peer, supervise
from .tools import ToolError, Tools, warn


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="ohm-launch",
        description="Start every peer of a topology, watch them, and summarize the run.",
        epilog="Exit status: 0 every peer finished; 1 a peer failed (also after a restart), "
               "timeout, or the run could not start; 130 interrupted; 2 usage.")
    ap.add_argument("--topology", required=True, help="topology file (ohmtopo gen writes one)")
    ap.add_argument("--config", help="run configuration (INI)")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override one configuration key (repeatable)")
    ap.add_argument("--out", required=True, help="run folder: logs, metrics, summary")
    ap.add_argument("--hosts", help="run peers over ssh on the hosts of their endpoints "
                                    "(see examples/lan)")
    ap.add_argument("--ssh", default="ssh", help="ssh command (default: ssh)")
    ap.add_argument("--ssh-opts", default="-o BatchMode=yes", help="options for ssh")
    ap.add_argument("--remote-ohmpeer", default="ohmpeer", help="ohmpeer path on the hosts")
    ap.add_argument("--remote-dir", default="ohmpeer-run", help="run folder on the hosts")
    ap.add_argument("--insecure", action="store_true", help="plain TCP, no CURVE keys")
    ap.add_argument("--ohmpeer", help="path of the ohmpeer binary")
    ap.add_argument("--ohmtopo", help="path of the ohmtopo binary")
    ap.add_argument("--kill", action="append", default=[], metavar="PEER@ROUND",
                    help="SIGKILL PEER once it reports ROUND (fault injection)")
    ap.add_argument("--restart", action="store_true", help="restart killed peers with --resume")
    ap.add_argument("--restart-delay", type=float, default=1.0,
                    help="seconds between a kill and the restart (default 1)")
    ap.add_argument("--resume", action="store_true",
                    help="continue a run stopped earlier in the same --out: keep its keys, "
                         "metrics and checkpoints and start every peer with --resume")
    ap.add_argument("--slow", action="append", default=[], metavar="PEER:FACTOR",
                    help="a straggler: PEER runs as on a machine FACTOR times slower "
                         "(train.slowdown; what it is slow at: train.slowdown_basis)")
    ap.add_argument("--join", action="append", default=[], metavar="PEER@SECONDS",
                    help="start PEER SECONDS after the others; it starts from its neighbours' "
                         "models (train.join) and they do not wait for it at start-up")
    ap.add_argument("--leave", action="append", default=[], metavar="PEER@ROUND",
                    help="PEER leaves cleanly after ROUND rounds (train.leave_at)")
    ap.add_argument("--target-acc", type=float, metavar="A",
                    help="report the time at which the honest peers' mean accuracy first "
                         "reached A (summary.json: time_to_target_s)")
    ap.add_argument("--plot", action="store_true", help="write PNG plots (gnuplot)")
    ap.add_argument("--report", action="store_true",
                    help="write DIR/report.html, the run at a glance (ohm-report)")
    ap.add_argument("--consensus", action="store_true",
                    help="record each honest peer's distance to the honest average at every "
                         "evaluation (consensus.csv; peers write snapshots)")
    ap.add_argument("--keep-snapshots", action="store_true", help="keep DIR/snapshots/")
    ap.add_argument("--quiet", action="store_true", help="no live progress line")
    ap.add_argument("--timeout", type=float, default=0,
                    help="abort the run after this many seconds")
    args = ap.parse_args(argv)
    kills = {}
    for s in args.kill:
        m = re.match(r"^(\d+)@(\d+)$", s)
        if not m:
            ap.error("--kill expects PEER@ROUND, got '%s'" % s)
        kills[int(m.group(1))] = int(m.group(2))
    args.kills = kills
    if args.hosts and (args.kill or args.restart):
        ap.error("--kill and --restart are available for local runs only")
    # Per-peer settings: {peer: ["section.key=value", ...]}; starts: {peer: seconds}.
    args.peer_sets, args.starts = {}, {}
    for opt, pat, key in (("--slow", r"^(\d+):(\d+(?:\.\d+)?)$", "train.slowdown"),
                          ("--join", r"^(\d+)@(\d+(?:\.\d+)?)$", "train.join"),
                          ("--leave", r"^(\d+)@(\d+)$", "train.leave_at")):
        for v in getattr(args, opt[2:]):
            m = re.match(pat, v)
            if not m:
                ap.error("%s expects %s, got '%s'" % (
                    opt, {"--slow": "PEER:FACTOR", "--join": "PEER@SECONDS",
                          "--leave": "PEER@ROUND"}[opt], v))
            pid = int(m.group(1))
            if opt == "--slow" and float(m.group(2)) < 1:
                ap.error("--slow %s: the factor must be at least 1" % v)
            if opt == "--join":
                args.starts[pid] = float(m.group(2))
                val = "true"
            else:
                val = m.group(2)
            args.peer_sets.setdefault(pid, []).append("%s=%s" % (key, val))
    if args.starts:
        # The others' start-up barrier must not wait for the late joiners.
        args.set = args.set + ["net.late_joiners=" + ",".join(map(str, sorted(args.starts)))]
    return args


def fresh_start(out):
    """A fresh run starts with fresh metrics, logs and checkpoints."""
    for name in os.listdir(out):
        if re.match(r"^peer-\d+\.(jsonl|log|ckpt)$", name):
            os.unlink(os.path.join(out, name))


def prepare(args, tools, topo_json, out):
    """The run folder's topology (with fresh keys unless --insecure) and config."""
    topo = os.path.join(out, "topology.topo")
    if args.insecure:
        if os.path.abspath(args.topology) != topo:
            shutil.copyfile(args.topology, topo)
    else:
        tools.make_keys([p["id"] for p in topo_json["peers"]], os.path.join(out, "keys"))
        tools.keyed_topology(args.topology, os.path.join(out, "keys"), topo)
    if args.config and os.path.abspath(args.config) != os.path.join(out, "config.ini"):
        shutil.copyfile(args.config, os.path.join(out, "config.ini"))
    return topo


def report_failures(out, runner, peers, outcome):
    """Each failed peer with the end of its log; then who the launcher stopped."""
    for p in outcome.failed:
        log = os.path.join(out, "peer-%d.log" % p.pid)
        print("ohm-launch: peer %d%s failed (%s). Last lines of %s:"
              % (p.pid, runner.where(p), summary.failed_how(p), log), file=sys.stderr)
        try:
            with open(log, errors="replace") as f:
                for line in f.read().splitlines()[-10:]:
                    print("  " + line, file=sys.stderr)
        except OSError:
            pass
    stopped = sorted(p.pid for p in peers.values() if p.state == "stopped")
    if stopped:
        why = "a peer failed" if outcome.failed else (
            "interrupted" if outcome.interrupted else "--timeout")
        print("ohm-launch: stopped peer%s %s (%s)" % ("s" if len(stopped) > 1 else "",
                                                      " ".join(map(str, stopped)), why),
              file=sys.stderr)


def machine(load_start):
    """Where the run ran, for the report's header."""
    mem = None
    try:
        with open("/proc/meminfo") as f:
            m = re.search(r"MemTotal:\s+(\d+) kB", f.read())
            mem = int(m.group(1)) // 1024 if m else None
    except OSError:
        pass
    return {"host": platform.node(), "system": platform.platform(), "cpus": os.cpu_count(),
            "mem_mb": mem, "load_start": load_start, "load_end": list(os.getloadavg())}


def write_report(out, defaults):
    """DIR/report.html by the ohm-report program beside this launcher."""
    prog = (defaults or {}).get("ohm_report")
    if not prog or not os.path.isfile(prog):
        warn("--report: the ohm-report program was not found (%s)" % prog)
        return
    r = subprocess.run([sys.executable, prog, out, "-o", os.path.join(out, "report.html")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    if r.returncode != 0:
        warn("--report: ohm-report failed (exit %d): %s" % (r.returncode, r.stdout.strip()[-500:]))
    else:
        print(r.stdout.strip())


def main(argv=None, defaults=None):
    """Runs ohm-launch; returns its exit status. defaults: where the entry point
    expects the binaries ({"ohmpeer": [paths], "ohmtopo": [paths]})."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    out = os.path.abspath(args.out)
    load_start = list(os.getloadavg())
    try:
        tools = Tools(args.ohmpeer, args.ohmtopo, defaults)
        topo_json = tools.topology(args.topology)
        ids = {p["id"] for p in topo_json["peers"]}
        for opt, named in (("--kill", args.kills), ("--slow/--join/--leave", args.peer_sets)):
            missing = sorted(set(named) - ids)
            if missing:
                raise ToolError("%s names peer %d, which %s does not declare"
                                % (opt, missing[0], args.topology))
        # Validates the config and the overrides before anything starts.
        rounds = int(tools.config_values(["train.rounds"], args.config, args.set)["train.rounds"])
        consts = energy.constants(tools.config_values(energy.KEYS, args.config, args.set))
        info = {"command": ["ohm-launch"] + list(argv), "ohmpeer_version": tools.version(),
                "config_resolved": tools.config_table(args.config, args.set)}
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "topology.json"), "w") as f:
            json.dump(topo_json, f, indent=1)
            f.write("\n")
        if not args.resume:
            fresh_start(out)
        if args.hosts:
            runner = SshRunner(args, topo_json, out)
            runner.prepare(prepare(args, tools, topo_json, out), args.config)
        else:
            topo = prepare(args, tools, topo_json, out)
            base = [tools.ohmpeer, "run", "--topology", topo, "--out", out]
            if args.config:
                base += ["--config", args.config]
            for s in args.set:
                base += ["--set", s]
            if args.insecure:
                base += ["--set", "net.insecure=true"]
            if args.consensus:
                base += ["--set", "train.snapshots=true"]
            runner = LocalRunner(base, out, resume_all=args.resume)
    except (ToolError, SetupError, OSError) as e:
        warn(str(e))
        return 1

    peers = {p["id"]: Peer(p) for p in topo_json["peers"]}
    for pid, sets in args.peer_sets.items():
        peers[pid].sets = sets
    for pid, after in args.starts.items():
        peers[pid].start_after = after
    outcome = supervise(runner, peers, rounds, kills=args.kills, restart=args.restart,
                        restart_delay=args.restart_delay, timeout=args.timeout, quiet=args.quiet)
    report_failures(out, runner, peers, outcome)
    if outcome.failed:
        status = 1
    elif outcome.interrupted:
        status = 130
    elif outcome.timed_out:
        status = 1
    else:
        status = 0

    extra = {"ohmpeer": tools.ohmpeer, "ohmtopo": tools.ohmtopo}
    extra.update(info)
    extra["machine"] = machine(load_start)
    extra["exit_codes"] = {str(p.pid): p.exit for p in sorted(peers.values(), key=lambda q: q.pid)}
    extra.update(energy.run_estimate({p.pid: p.final_row() for p in peers.values()}, consts))
    if args.hosts:
        extra["hosts"] = runner.placement()
    if args.consensus:
        means = summary.consensus_distances(out, peers, args.keep_snapshots)
        if means:
            last = max(means)
            extra["consensus_distance"] = means[last]
            extra["consensus_distance_by_round"] = {str(k): v for k, v in sorted(means.items())}
    if args.target_acc is not None:
        extra["target_acc"] = args.target_acc
        extra["time_to_target_s"] = summary.time_to_target(peers, args.target_acc)
    data, head, notes, rows = summary.build(out, peers, rounds, outcome, status, args, extra)
    if args.consensus and "consensus_distance" in extra:
        head += "; consensus distance (mean squared) %.4g at round %d" % (
            extra["consensus_distance"], max(int(k) for k in extra["consensus_distance_by_round"]))
    summary.write(out, data, head, notes, rows)
    print(head)
    for n in notes:
        print(n)
    print("\n".join(rows))
    print("summary: %s" % os.path.join(out, "summary.json"))
    if args.plot:
        summary.plot(out, peers)
    if args.report:
        write_report(out, defaults)
    if outcome.timed_out:
        warn("run aborted after --timeout %.0f s" % args.timeout)
    if outcome.failed and not outcome.timed_out:
        warn("exit status 1: %s failed" % ", ".join("peer %d" % p.pid for p in outcome.failed))
    return status
