"""Peers on other hosts, started over ssh (ohm-launch --hosts FILE).

Every peer runs on the host its endpoint names (tcp://HOST:PORT). The hosts
file maps those names to how they are reached, one host per line:

    # NAME [ssh=USER@ADDRESS] [ohmpeer=/path/to/ohmpeer] [dir=/path/to/run-folder]
    lab1  ssh=alice@10.0.0.1  ohmpeer=/opt/ohmpeer/bin/ohmpeer
    lab2  ssh=alice@10.0.0.2  dir=/scratch/alice/run1
    10.0.0.3

NAME is the host exactly as the topology spells it. ssh= is the ssh
destination (default: NAME), ohmpeer= the binary on that host (default:
--remote-ohmpeer, "ohmpeer" on the remote PATH), dir= the run folder there
(default: --remote-dir, relative to the remote home). '#' starts a comment.

What travels: to each host only the topology, the config (when given) and the
secret keys of the peers that run there (mode 0600), as one tar stream over
ssh. Each peer runs as `ssh HOST 'cd DIR && echo $$ > peer-<id>.pid && exec
ohmpeer run ...'`; its output is streamed into OUT/peer-<id>.log here.
Progress comes from polling the tails of the remote peer-<id>.jsonl files.
At the end every peer-<id>.jsonl and peer-<id>.ckpt is copied back into OUT.
Remote peers are stopped through their recorded pids (SIGTERM, then SIGKILL).
"""

import io
import os
import re
import shlex
import subprocess
import sys
import tarfile
import tempfile
import time

REQUIREMENTS = """\
Each host needs: the ohmpeer binary (same version as here; see hosts-file ohmpeer=),
  its runtime libraries (Debian/Ubuntu: apt install libzmq5 libsodium23 libmsgpackc2
  libopenblas0 zlib1g), a POSIX shell with tar and tail, key-based ssh login from this
  machine, the data set (data.name=fashion-mnist: apt install dataset-fashion-mnist, or
  the IDX files at data.path; synthetic data needs nothing), and its peers' ports open
  to the other hosts."""

# Seconds between two progress polls of one host.
POLL_EVERY = 2.0


class SetupError(Exception):
    """The run cannot start: a bad hosts file, an unreachable host, ..."""


class Host:
    def __init__(self, name, line):
        self.name = name
        self.line = line
        self.target = name
        self.ohmpeer = None
        self.dir = None
        self.rdir = None
        self.peers = []
        self.poll = None  # (Popen, temp file) of the progress poll in flight
        self.next_poll = 0.0


def parse_hosts(path):
    """Hosts file -> {name: Host}. Errors name FILE:LINE."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise SetupError("%s: %s" % (path, e.strerror))
    hosts = {}
    for no, line in enumerate(text.splitlines(), 1):
        toks = line.split("#", 1)[0].split()
        if not toks:
            continue
        name = toks[0]
        if "=" in name:
            raise SetupError("%s:%d: a line starts with the host NAME, then ssh=, ohmpeer=, dir="
                             % (path, no))
        if name in hosts:
            raise SetupError("%s:%d: host '%s' already declared on line %d"
                             % (path, no, name, hosts[name].line))
        h = Host(name, no)
        for t in toks[1:]:
            key, eq, val = t.partition("=")
            if not eq or not val:
                raise SetupError("%s:%d: expected key=value, got '%s'" % (path, no, t))
            if key == "ssh":
                h.target = val
            elif key == "ohmpeer":
                h.ohmpeer = val
            elif key == "dir":
                h.dir = val
            else:
                raise SetupError("%s:%d: unknown key '%s' (known: ssh, ohmpeer, dir)"
                                 % (path, no, key))
        hosts[name] = h
    if not hosts:
        raise SetupError("%s: no hosts" % path)
    return hosts


def remote_path(d):
    """A remote path for the shell: quoted, with a leading ~ left to the remote $HOME."""
    if d == "~":
        return '"$HOME"'
    if d.startswith("~/"):
        return '"$HOME"/' + shlex.quote(d[2:])
    return shlex.quote(d)


def upload_tar(out, topo, config, host):
    """The files one host needs: topology, config, and only its own peers' secret keys."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add(src, name, mode):
            with open(src, "rb") as f:
                data = f.read()
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = mode
            ti.mtime = int(time.time())
            tar.addfile(ti, io.BytesIO(data))
        add(topo, "topology.topo", 0o644)
        if config:
            add(config, "config.ini", 0o644)
        keys = [pid for pid in host.peers
                if os.path.exists(os.path.join(out, "keys", "peer-%d.key" % pid))]
        if keys:
            ti = tarfile.TarInfo("keys")
            ti.type = tarfile.DIRTYPE
            ti.mode = 0o700
            ti.mtime = int(time.time())
            tar.addfile(ti)
        for pid in keys:
            add(os.path.join(out, "keys", "peer-%d.key" % pid), "keys/peer-%d.key" % pid, 0o600)
    return buf.getvalue()


class SshRunner:
    """Starts each peer over ssh on its host; polls, stops and collects remotely."""

    can_kill = False

    def __init__(self, args, topo_json, out):
        self.args = args
        self.out = out
        self.resume_all = args.resume
        self.hosts = parse_hosts(args.hosts)
        for p in topo_json["peers"]:
            name = p["host"]
            if name not in self.hosts:
                raise SetupError("peer %d: host '%s' of %s is not in %s (add a line '%s "
                                 "[ssh=USER@ADDRESS]')"
                                 % (p["id"], name, p["endpoint"], args.hosts, name))
            self.hosts[name].peers.append(p["id"])
        for h in self.hosts.values():
            h.ohmpeer = h.ohmpeer or args.remote_ohmpeer
            h.dir = h.dir or args.remote_dir
            h.rdir = remote_path(h.dir)
        self.used = [h for h in self.hosts.values() if h.peers]
        self.host_of = {pid: h for h in self.used for pid in h.peers}
        self.ssh = shlex.split(args.ssh) + shlex.split(args.ssh_opts or "")
        # ssh keeps the first value of an option: the user's options above win.
        self.ssh += ["-o", "BatchMode=yes", "-o", "ConnectTimeout=15", "-o", "LogLevel=ERROR"]

    # ---- short remote commands ---------------------------------------------

    def cmd(self, host, script):
        return self.ssh + [host.target, script]

    def run(self, host, script, stdin=None, timeout=60):
        """Runs a short remote command; returns (exit status, stdout bytes, stderr text)."""
        try:
            r = subprocess.run(self.cmd(host, script), input=stdin, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=timeout, start_new_session=True)
        except subprocess.TimeoutExpired:
            return 124, b"", "no answer within %d s" % timeout
        return r.returncode, r.stdout, r.stderr.decode(errors="replace").strip()

    def each(self, scripts, timeout=60):
        """Runs one short command per host in parallel: {host name: (status, stdout, stderr)}."""
        procs = {}
        for h, script in scripts:
            o, e = tempfile.TemporaryFile(), tempfile.TemporaryFile()
            p = subprocess.Popen(self.cmd(h, script), stdin=subprocess.DEVNULL, stdout=o,
                                 stderr=e, start_new_session=True)
            procs[h.name] = (p, o, e)
        res = {}
        deadline = time.time() + timeout
        for name, (p, o, e) in procs.items():
            try:
                p.wait(max(0.1, deadline - time.time()))
                rc = p.returncode
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                rc = 124
            o.seek(0)
            e.seek(0)
            res[name] = (rc, o.read(), e.read().decode(errors="replace").strip())
            o.close()
            e.close()
        return res

    # ---- before the run ------------------------------------------------------

    def prepare(self, topo, config):
        """Checks every host's binary, then copies the run's files there. Raises SetupError."""
        print(REQUIREMENTS)
        for h in self.used:
            print("host %s (ssh %s): peers %s in %s"
                  % (h.name, h.target, " ".join(map(str, h.peers)), h.dir))
        res = self.each([(h, "%s --version" % remote_path(h.ohmpeer)) for h in self.used])
        bad = []
        for name, (rc, _, err) in sorted(res.items()):
            if rc != 0:
                h = self.hosts[name]
                why = "ssh cannot reach it" if rc == 255 else "ohmpeer does not run there"
                bad.append("host %s (ssh %s): %s: %s" % (name, h.target, why,
                                                         err or "exit %d" % rc))
        if bad:
            raise SetupError("\nohm-launch: ".join(bad))
        failed = []
        for h in self.used:
            old = "" if self.resume_all else " ".join(
                "peer-%d.jsonl peer-%d.ckpt peer-%d.pid" % (i, i, i) for i in h.peers)
            script = "umask 077 && mkdir -p %s && cd %s && rm -f %s && tar -xf -" % (
                h.rdir, h.rdir, old)
            rc, _, err = self.run(h, script, stdin=upload_tar(self.out, topo, config, h),
                                  timeout=120)
            if rc != 0:
                failed.append("host %s: cannot prepare %s: %s" % (h.name, h.dir,
                                                                  err or "exit %d" % rc))
        if failed:
            raise SetupError("\nohm-launch: ".join(failed))

    # ---- the runner interface ------------------------------------------------

    def start(self, p, resume=False):
        h = self.host_of[p.pid]
        cmd = [remote_path(h.ohmpeer), "run", "--topology", "topology.topo", "--id", str(p.pid),
               "--out", "."]
        if self.args.config:
            cmd += ["--config", "config.ini"]
        for s in self.args.set:
            cmd += ["--set", shlex.quote(s)]
        if self.args.insecure:
            cmd += ["--set", "net.insecure=true"]
        for kv in p.sets:  # this peer's own settings (--slow, --join, --leave)
            cmd += ["--set", shlex.quote(kv)]
        if resume:
            cmd += ["--resume"]
        script = "cd %s && echo $$ > peer-%d.pid && exec %s" % (h.rdir, p.pid, " ".join(cmd))
        if p.log:
            p.log.close()
        p.log = open(os.path.join(self.out, "peer-%d.log" % p.pid), "a")
        # Own session: a Ctrl-C on the terminal reaches the launcher, not the ssh clients,
        # so the remote peers are stopped by pid rather than orphaned.
        p.proc = subprocess.Popen(self.cmd(h, script), stdin=subprocess.DEVNULL, stdout=p.log,
                                  stderr=subprocess.STDOUT, start_new_session=True)

    def poll_metrics(self, peers, now):
        for h in self.used:
            if h.poll is not None:
                self._poll_finish(h, peers)
            elif now >= h.next_poll:
                self._poll_start(h, peers)
                h.next_poll = now + POLL_EVERY

    def _poll_start(self, host, peers):
        """Asks one host for what its peers appended to their metrics since the last poll."""
        parts = ["printf '\\n@@ohm %d\\n'; tail -c +%d peer-%d.jsonl 2>/dev/null"
                 % (pid, peers[pid].offset + 1, pid) for pid in host.peers]
        script = "cd %s && { %s; }; true" % (host.rdir, "; ".join(parts))
        tmp = tempfile.TemporaryFile()
        p = subprocess.Popen(self.cmd(host, script), stdin=subprocess.DEVNULL, stdout=tmp,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        host.poll = (p, tmp)

    def _poll_finish(self, host, peers, wait=False):
        p, tmp = host.poll
        if wait:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p.poll() is None:
            return
        host.poll = None
        tmp.seek(0)
        data = tmp.read()
        tmp.close()
        if p.returncode != 0:
            return
        parts = re.split(rb"\n@@ohm (\d+)\n", data)
        for i in range(1, len(parts) - 1, 2):
            pid = int(parts[i])
            if pid not in peers:
                continue
            chunk = parts[i + 1]
            # Only whole lines: the peer may be writing one right now.
            cut = chunk.rfind(b"\n") + 1
            peers[pid].offset += cut
            peers[pid].absorb(chunk[:cut])

    def kill(self, p):
        raise AssertionError("--kill is refused with --hosts before the run starts")

    def _signal(self, ids, sig):
        """Sends sig to the remote peers `ids` through the pids they recorded."""
        scripts = []
        for h in self.used:
            mine = [i for i in h.peers if i in ids]
            if mine:
                parts = ["[ -f peer-%d.pid ] && kill -%s \"$(cat peer-%d.pid)\" 2>/dev/null"
                         % (i, sig, i) for i in mine]
                scripts.append((h, "cd %s && { %s; }; true" % (h.rdir, "; ".join(parts))))
        if scripts:
            self.each(scripts, timeout=30)

    def stop(self, peers, grace=5.0):
        """Stops every remote peer still running: SIGTERM (repeated each second, since a
        session may not have recorded its pid yet), SIGKILL after `grace`, and last the
        local ssh sessions."""
        def running():
            return [p for p in peers.values() if p.proc is not None and p.proc.poll() is None]

        # A session that ended badly (ssh lost, exit 255) may have left its peer running.
        ids = {p.pid for p in peers.values()
               if p.proc is not None and (p.proc.poll() is None or p.proc.returncode != 0)}
        if not ids:
            return
        print("ohm-launch: stopping remote peers %s" % " ".join(map(str, sorted(ids))),
              file=sys.stderr, flush=True)
        self._signal(ids, "TERM")
        deadline = time.time() + grace
        retry = time.time() + 1.0
        while running() and time.time() < deadline:
            time.sleep(0.1)
            if time.time() >= retry:
                self._signal({p.pid for p in running()}, "TERM")
                retry = time.time() + 1.0
        if running():
            self._signal({p.pid for p in running()}, "KILL")
            deadline = time.time() + grace
            while running() and time.time() < deadline:
                time.sleep(0.1)
        for p in running():
            p.proc.kill()
            p.proc.wait()

    def finish(self, peers):
        """Waits for the polls in flight, then copies every peer-<id>.jsonl/.ckpt back
        into OUT (one tar stream per host) and reads the metrics again from them."""
        for h in self.used:
            if h.poll is not None:
                self._poll_finish(h, peers, wait=True)
        for p in peers.values():
            if p.log:
                p.log.close()
                p.log = None
        scripts = []
        for h in self.used:
            names = " ".join("peer-%d.jsonl peer-%d.ckpt" % (i, i) for i in h.peers)
            scripts.append((h, "cd %s && set -- && for f in %s; do [ -f \"$f\" ] && set -- "
                               "\"$@\" \"$f\"; done; [ $# -eq 0 ] || exec tar -cf - \"$@\""
                               % (h.rdir, names)))
        missing = []
        for name, (rc, data, err) in sorted(self.each(scripts, timeout=300).items()):
            h = self.hosts[name]
            want = {"peer-%d.%s" % (i, ext) for i in h.peers for ext in ("jsonl", "ckpt")}
            got = set()
            if rc == 0 and data:
                try:
                    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
                        for m in tar.getmembers():
                            if m.name not in want or not m.isfile():
                                continue  # never write a name we did not ask for
                            body = tar.extractfile(m).read()
                            dst = os.path.join(self.out, m.name)
                            with open(dst + ".tmp", "wb") as f:
                                f.write(body)
                            os.replace(dst + ".tmp", dst)
                            got.add(m.name)
                except tarfile.TarError as e:
                    print("ohm-launch: %s: bad result archive: %s" % (name, e), file=sys.stderr)
            elif rc != 0:
                print("ohm-launch: %s: could not copy the results back: %s"
                      % (name, err or "exit %d" % rc), file=sys.stderr)
            missing += sorted("%s:%s" % (name, n) for n in want - got if n.endswith(".jsonl"))
        if missing:
            print("ohm-launch: metrics not copied back: %s" % ", ".join(missing), file=sys.stderr)
        # The copies are authoritative: read them again from the start.
        for p in peers.values():
            p.reset_metrics()
            path = os.path.join(self.out, "peer-%d.jsonl" % p.pid)
            if os.path.exists(path):
                with open(path, "rb") as f:
                    p.absorb(f.read())

    def where(self, p):
        why = " (ssh failed)" if p.exit == 255 else ""
        return " on %s%s" % (self.host_of[p.pid].name, why)

    def placement(self):
        return {h.name: h.peers for h in self.used}
