"""Peers as processes on this machine (ohm-launch without --hosts)."""

import os
import signal
import subprocess
import time


class LocalRunner:
    """Starts `ohmpeer run` per peer with its output in OUT/peer-<id>.log and
    reads OUT/peer-<id>.jsonl as the peer appends to it."""

    can_kill = True

    def __init__(self, base_cmd, out, resume_all=False):
        """base_cmd: the ohmpeer command line without --id; out: the run folder;
        resume_all: start every peer with --resume (ohm-launch --resume)."""
        self.base = list(base_cmd)
        self.out = out
        self.resume_all = resume_all

    def start(self, p, resume=False):
        if p.log:
            p.log.close()
        p.log = open(os.path.join(self.out, "peer-%d.log" % p.pid), "a")
        cmd = self.base + ["--id", str(p.pid)] + (["--resume"] if resume else [])
        for kv in p.sets:  # this peer's own settings (--slow, --join, --leave)
            cmd += ["--set", kv]
        p.proc = subprocess.Popen(cmd, stdout=p.log, stderr=subprocess.STDOUT)

    def poll_metrics(self, peers, now=None):
        for p in peers.values():
            path = os.path.join(self.out, "peer-%d.jsonl" % p.pid)
            try:
                with open(path, "rb") as f:
                    f.seek(p.offset)
                    chunk = f.read()
            except OSError:
                continue
            # Only whole lines: a peer flushes per line, but we may read mid-write.
            cut = chunk.rfind(b"\n") + 1
            if cut:
                p.offset += cut
                p.absorb(chunk[:cut])

    def kill(self, p):
        p.proc.kill()
        p.proc.wait()

    def stop(self, peers, grace=5.0):
        """SIGTERM every peer still running (by pid), SIGKILL what is left after `grace`."""
        live = [p for p in peers.values() if p.proc and p.proc.poll() is None]
        for p in live:
            try:
                p.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.time() + grace
        for p in live:
            try:
                p.proc.wait(max(0.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.proc.kill()
                p.proc.wait()

    def finish(self, peers):
        self.poll_metrics(peers)
        for p in peers.values():
            if p.log:
                p.log.close()
                p.log = None

    def where(self, p):
        return ""
