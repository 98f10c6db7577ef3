"""The one supervision loop of ohm-launch, for local and remote peers alike.

A runner (local.LocalRunner, ssh.SshRunner) knows how to start a peer, fetch
its new metric lines, kill it and stop everything; this module decides when.
Every peer ends in one state:

    finished  exited 0 (after the whole run, or after leaving it with train.leave_at)
    failed    exited non-zero on its own (also after a restart): the run fails
    killed    killed by --kill and not restarted (fault injection, not a failure)
    stopped   stopped by the launcher (another peer failed, Ctrl-C, --timeout)
"""

import json
import signal
import sys
import time

# Seconds between two looks at the peers.
TICK = 0.2


class Peer:
    """One peer of the run: its topology entry, its current process, its metrics."""

    def __init__(self, info):
        self.pid = info["id"]
        self.info = info
        self.byzantine = info["role"] == "byzantine"
        self.proc = None  # the current process (a Popen of ohmpeer, or of ssh)
        self.log = None  # the open log file the process writes into
        self.state = "starting"
        self.exit = None  # the last process's exit status
        self.restarts = 0
        self.killed_at = None  # the round at which --kill struck
        self.offset = 0  # bytes of the metrics file already read
        self.rows = []
        self.round = 0
        self.acc = None
        self.sets = []  # this peer's own "section.key=value" settings
        self.start_after = 0.0  # seconds after the others (--join)
        self.started_at = None  # seconds after the launch when its process started

    def absorb(self, data):
        """Parses whole JSON lines (bytes) of the peer's metrics file."""
        for line in data.decode(errors="replace").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            self.rows.append(row)
            self.round = max(self.round, int(row.get("round", 0)))
            if row.get("test_acc") is not None:
                self.acc = row["test_acc"]

    def reset_metrics(self):
        self.rows, self.offset, self.round, self.acc = [], 0, 0, None

    def final_row(self):
        return next((r for r in reversed(self.rows) if r.get("final")), None)


def progress_line(peers, rounds, t0):
    """One line: the slowest peer's round, the honest mean accuracy so far, who runs."""
    accs = [p.acc for p in peers.values() if not p.byzantine and p.acc is not None]
    slowest = min(p.round for p in peers.values())
    alive = sum(1 for p in peers.values() if p.state == "running")
    acc = "%.4f" % (sum(accs) / len(accs)) if accs else "  -   "
    return "round %*d/%d  honest acc %s  alive %d/%d  %6.1fs" % (
        len(str(rounds)), slowest, rounds, acc, alive, len(peers), time.time() - t0)


class Outcome:
    """How the loop ended."""

    def __init__(self):
        self.failed = []  # peers that failed, in the order they were seen
        self.interrupted = False
        self.timed_out = False
        self.wall = 0.0


def say(msg):
    print("\nohm-launch: " + msg, flush=True)


def supervise(runner, peers, rounds, kills=None, restart=False, restart_delay=1.0, timeout=0,
              quiet=False):
    """Starts every peer through `runner` and watches them until all have ended,
    one fails, the user interrupts (SIGINT/SIGTERM) or `timeout` seconds pass;
    then stops what still runs. kills: {peer id: round} to SIGKILL a peer once it
    reports that round, restarted with --resume after restart_delay seconds when
    `restart`. Returns an Outcome; every peer's state is final."""
    kills = kills or {}
    out = Outcome()
    stop_requested = []
    old = {s: signal.signal(s, lambda *_: stop_requested.append(1))
           for s in (signal.SIGINT, signal.SIGTERM)}
    t0 = time.time()
    for p in peers.values():
        if p.start_after > 0:
            p.state = "waiting"  # a late joiner: started below when its time comes
            continue
        runner.start(p, resume=runner.resume_all)
        p.started_at = 0.0
        p.state = "running"
    tty = sys.stdout.isatty() and not quiet
    last_print = 0.0
    restart_at = {}
    try:
        while True:
            time.sleep(TICK)
            now = time.time()
            runner.poll_metrics(peers, now)
            for p in peers.values():
                if p.state == "waiting" and now - t0 >= p.start_after:
                    runner.start(p, resume=runner.resume_all)
                    p.started_at = now - t0
                    p.state = "running"
                    say("started peer %d (joins %.1f s late)" % (p.pid, p.start_after))
            for p in peers.values():
                if (p.pid in kills and p.killed_at is None and p.state == "running"
                        and p.round >= kills[p.pid] and p.proc.poll() is None):
                    runner.kill(p)
                    p.killed_at = p.round
                    p.exit = p.proc.returncode
                    p.state = "killed"
                    say("killed peer %d at round %d" % (p.pid, p.round))
                    if restart:
                        restart_at[p.pid] = now + restart_delay
            for pid, when in sorted(restart_at.items()):
                if now >= when:
                    del restart_at[pid]
                    p = peers[pid]
                    p.restarts += 1
                    runner.start(p, resume=True)
                    p.started_at = now - t0
                    p.state = "running"
                    say("restarted peer %d with --resume" % pid)
            for p in peers.values():
                if p.state != "running":
                    continue
                rc = p.proc.poll()
                if rc is None:
                    continue
                p.exit = rc
                p.state = "finished" if rc == 0 else "failed"
                if rc != 0:
                    out.failed.append(p)
            out.interrupted = bool(stop_requested)
            out.timed_out = bool(timeout) and time.time() - t0 > timeout
            if out.failed or out.interrupted or out.timed_out:
                break
            if not restart_at and all(p.state not in ("running", "waiting")
                                      for p in peers.values()):
                break
            if tty and time.time() - last_print > 0.5:
                sys.stdout.write("\r" + progress_line(peers, rounds, t0))
                sys.stdout.flush()
                last_print = time.time()
            elif not tty and not quiet and time.time() - last_print > 10:
                print(progress_line(peers, rounds, t0), flush=True)
                last_print = time.time()
        if out.failed or out.interrupted or out.timed_out or any(
                p.state == "running" for p in peers.values()):
            runner.stop(peers)
            for p in peers.values():
                if p.state == "running":
                    p.exit = p.proc.poll()
                    p.state = "stopped"
                elif p.state == "waiting":
                    p.state = "stopped"  # never started
        out.wall = time.time() - t0
        runner.finish(peers)
        if tty:
            sys.stdout.write("\r" + progress_line(peers, rounds, t0) + "\n")
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return out
