"""ohm_remote: the ssh path of ohm-launch (--hosts FILE).

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
At the end every peer-<id>.jsonl and peer-<id>.ckpt is copied back into OUT
and the local launcher's summary and plots are written. If the run fails or
is aborted (Ctrl-C, SIGTERM, --timeout), the remote peers that were started
are stopped through their recorded pids (SIGTERM, then SIGKILL).

Only the standard library is used.
"""

import io
import json
import os
import re
import shlex
import shutil
import signal
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

ENDPOINT_RE = re.compile(r"^tcp://(\[[^\]]+\]|[^:/\[\]]+):(\d+)$")


def fail(msg):
    sys.exit("ohm-launch: " + msg)


def launcher_module():
    """The local launcher's namespace, whose helpers (Peer, summary, plots) we reuse."""
    main = sys.modules.get("__main__")
    if main is not None and hasattr(main, "write_summary") and hasattr(main, "Peer"):
        return main
    import importlib.machinery
    import importlib.util
    here = os.path.dirname(os.path.abspath(__file__))
    loader = importlib.machinery.SourceFileLoader("ohm_launch", os.path.join(here, "ohm-launch"))
    spec = importlib.util.spec_from_loader("ohm_launch", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


class Host:
    def __init__(self, name, line):
        self.name = name
        self.line = line
        self.target = name
        self.ohmpeer = None
        self.dir = None
        self.peers = []
        self.poll = None  # (Popen, temp file) of the progress poll in flight
        self.next_poll = 0.0


def parse_hosts(path):
    """Hosts file -> {name: Host}. Errors name FILE:LINE."""
    try:
        text = open(path).read()
    except OSError as e:
        fail("%s: %s" % (path, e.strerror))
    hosts = {}
    for no, line in enumerate(text.splitlines(), 1):
        toks = line.split("#", 1)[0].split()
        if not toks:
            continue
        name = toks[0]
        if "=" in name:
            fail("%s:%d: a line starts with the host NAME, then ssh=, ohmpeer=, dir=" % (path, no))
        if name in hosts:
            fail("%s:%d: host '%s' already declared on line %d" % (path, no, name, hosts[name].line))
        h = Host(name, no)
        for t in toks[1:]:
            key, eq, val = t.partition("=")
            if not eq or not val:
                fail("%s:%d: expected key=value, got '%s'" % (path, no, t))
            if key == "ssh":
                h.target = val
            elif key == "ohmpeer":
                h.ohmpeer = val
            elif key == "dir":
                h.dir = val
            else:
                fail("%s:%d: unknown key '%s' (known: ssh, ohmpeer, dir)" % (path, no, key))
        hosts[name] = h
    if not hosts:
        fail("%s: no hosts" % path)
    return hosts


def endpoint_host(endpoint):
    m = ENDPOINT_RE.match(endpoint)
    return m.group(1) if m else None


def remote_path(d):
    """A remote path for the shell: quoted, with a leading ~ left to the remote $HOME."""
    if d == "~":
        return '"$HOME"'
    if d.startswith("~/"):
        return '"$HOME"/' + shlex.quote(d[2:])
    return shlex.quote(d)


class Remote:
    """One remote run: the hosts, the ssh command line and the peers' sessions."""

    def __init__(self, args, hosts):
        self.args = args
        self.hosts = hosts
        self.ssh = shlex.split(args.ssh) + shlex.split(args.ssh_opts or "")
        # ssh keeps the first value of an option: the user's options above win.
        self.ssh += ["-o", "BatchMode=yes", "-o", "ConnectTimeout=15", "-o", "LogLevel=ERROR"]

    def cmd(self, host, script):
        return self.ssh + [host.target, script]

    def run(self, host, script, stdin=None, timeout=60):
        """Runs a short remote command; returns (exit status, stdout bytes, stderr text)."""
        try:
            r = subprocess.run(self.cmd(host, script), input=stdin, capture_output=True,
                               timeout=timeout, start_new_session=True)
        except subprocess.TimeoutExpired:
            return 124, b"", "no answer within %d s" % timeout
        return r.returncode, r.stdout, r.stderr.decode(errors="replace").strip()

    def each(self, scripts, timeout=60):
        """Runs one short command per host in parallel: {host name: (status, stdout, stderr)}."""
        procs = {}
        for h, script in scripts:
            out = tempfile.TemporaryFile()
            err = tempfile.TemporaryFile()
            p = subprocess.Popen(self.cmd(h, script), stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=err, start_new_session=True)
            procs[h.name] = (p, out, err)
        res = {}
        deadline = time.time() + timeout
        for name, (p, out, err) in procs.items():
            try:
                p.wait(max(0.1, deadline - time.time()))
                rc = p.returncode
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                rc = 124
            out.seek(0)
            err.seek(0)
            res[name] = (rc, out.read(), err.read().decode(errors="replace").strip())
            out.close()
            err.close()
        return res


def upload_tar(out, topo, config, host):
    """The files one host needs: topology, config, and only its own peers' secret keys."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add(src, name, mode):
            data = open(src, "rb").read()
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = mode
            ti.mtime = int(time.time())
            tar.addfile(ti, io.BytesIO(data))
        add(topo, "topology.topo", 0o644)
        if config:
            add(config, "config.ini", 0o644)
        keys = [pid for pid in host.peers if os.path.exists(os.path.join(out, "keys", "peer-%d.key" % pid))]
        if keys:
            ti = tarfile.TarInfo("keys")
            ti.type = tarfile.DIRTYPE
            ti.mode = 0o700
            ti.mtime = int(time.time())
            tar.addfile(ti)
        for pid in keys:
            add(os.path.join(out, "keys", "peer-%d.key" % pid), "keys/peer-%d.key" % pid, 0o600)
    return buf.getvalue()


def absorb(peer, chunk):
    """Parses whole JSON lines fetched from a remote metrics file into the peer's rows."""
    for line in chunk.decode(errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        peer.rows.append(row)
        peer.round = max(peer.round, int(row.get("round", 0)))
        if row.get("test_acc") is not None:
            peer.acc = row["test_acc"]


def poll_start(rem, host, peers):
    """Asks one host for what its peers appended to their metrics since the last poll."""
    parts = []
    for pid in host.peers:
        parts.append("printf '\\n@@ohm %d\\n'; tail -c +%d peer-%d.jsonl 2>/dev/null" % (
            pid, peers[pid].offset + 1, pid))
    script = "cd %s && { %s; }; true" % (host.rdir, "; ".join(parts))
    tmp = tempfile.TemporaryFile()
    p = subprocess.Popen(rem.cmd(host, script), stdin=subprocess.DEVNULL, stdout=tmp,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    host.poll = (p, tmp)


def poll_finish(host, peers, wait=False):
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
        chunk = parts[i + 1]
        if pid not in peers:
            continue
        # Only whole lines: the peer may be writing one right now.
        cut = chunk.rfind(b"\n") + 1
        peers[pid].offset += cut
        absorb(peers[pid], chunk[:cut])


def fetch_results(rem, out, peers):
    """Copies every peer-<id>.jsonl/.ckpt back into OUT (one tar stream per host)."""
    scripts = []
    for h in rem.hosts.values():
        if not h.peers:
            continue
        names = " ".join("peer-%d.jsonl peer-%d.ckpt" % (i, i) for i in h.peers)
        scripts.append((h, "cd %s && set -- && for f in %s; do [ -f \"$f\" ] && set -- \"$@\" \"$f\"; "
                           "done; [ $# -eq 0 ] || exec tar -cf - \"$@\"" % (h.rdir, names)))
    missing = []
    for name, (rc, data, err) in rem.each(scripts, timeout=300).items():
        h = rem.hosts[name]
        want = {"peer-%d.%s" % (i, ext) for i in h.peers for ext in ("jsonl", "ckpt")}
        got = set()
        if rc == 0 and data:
            try:
                with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
                    for m in tar.getmembers():
                        if m.name not in want or not m.isfile():
                            continue  # never write a name we did not ask for
                        body = tar.extractfile(m).read()
                        dst = os.path.join(out, m.name)
                        with open(dst + ".tmp", "wb") as f:
                            f.write(body)
                        os.replace(dst + ".tmp", dst)
                        got.add(m.name)
            except tarfile.TarError as e:
                print("ohm-launch: %s: bad result archive: %s" % (name, e), file=sys.stderr)
        elif rc != 0:
            print("ohm-launch: %s: could not copy the results back: %s" % (name, err or "exit %d" % rc),
                  file=sys.stderr)
        missing += sorted("%s:%s" % (name, n) for n in want - got if n.endswith(".jsonl"))
    if missing:
        print("ohm-launch: metrics not copied back: %s" % ", ".join(missing), file=sys.stderr)
    # The copies are authoritative: read them again from the start.
    for p in peers.values():
        p.rows, p.offset, p.round, p.acc = [], 0, 0, None
        path = os.path.join(out, "peer-%d.jsonl" % p.pid)
        if os.path.exists(path):
            absorb(p, open(path, "rb").read())


def signal_remote(rem, peers, ids, sig):
    """Sends sig to the remote peers `ids` through the pids they recorded."""
    scripts = []
    for h in rem.hosts.values():
        mine = [i for i in h.peers if i in ids]
        if not mine:
            continue
        parts = ["[ -f peer-%d.pid ] && kill -%s \"$(cat peer-%d.pid)\" 2>/dev/null" % (i, sig, i)
                 for i in mine]
        scripts.append((h, "cd %s && { %s; }; true" % (h.rdir, "; ".join(parts))))
    if scripts:
        rem.each(scripts, timeout=30)


def stop_remote(rem, peers, grace=5.0):
    """Stops every remote peer not known to have finished: SIGTERM (repeated each second,
    since a session may not have recorded its pid yet), SIGKILL after `grace`, and last
    the local ssh sessions."""
    def running():
        return [p for p in peers.values() if p.proc is not None and p.proc.poll() is None]

    ids = [p.pid for p in peers.values()
           if p.proc is not None and (p.proc.poll() is None or p.proc.returncode != 0)]
    if not ids:
        return
    print("ohm-launch: stopping remote peers %s" % " ".join(map(str, ids)), file=sys.stderr)
    signal_remote(rem, peers, set(ids), "TERM")
    deadline = time.time() + grace
    retry = time.time() + 1.0
    while running() and time.time() < deadline:
        time.sleep(0.1)
        if time.time() >= retry:
            signal_remote(rem, peers, set(p.pid for p in running()), "TERM")
            retry = time.time() + 1.0
    if running():
        signal_remote(rem, peers, set(p.pid for p in running()), "KILL")
        deadline = time.time() + grace
        while running() and time.time() < deadline:
            time.sleep(0.1)
    for p in running():
        p.proc.kill()
        p.proc.wait()


def run(args, ohmpeer, out, src_lines, info):
    """ohm-launch --hosts: prepares, starts, watches and collects a run over ssh.
    Returns the launcher's exit status (0 ok, 1 failure or timeout, 130 interrupted)."""
    L = launcher_module()
    if args.kill or args.restart:
        fail("--kill and --restart are available for local runs only")
    hosts = parse_hosts(args.hosts)
    for pid in sorted(info):
        ep = info[pid]["endpoint"]
        name = endpoint_host(ep)
        if name is None:
            fail("%s:%d: peer %d: endpoint '%s' is not tcp://HOST:PORT" % (
                args.topology, info[pid]["line"], pid, ep))
        if name not in hosts:
            fail("peer %d: host '%s' of %s is not in %s (add a line '%s [ssh=USER@ADDRESS]')" % (
                pid, name, ep, args.hosts, name))
        hosts[name].peers.append(pid)
    for h in hosts.values():
        h.ohmpeer = h.ohmpeer or args.remote_ohmpeer
        h.dir = h.dir or args.remote_dir
        h.rdir = remote_path(h.dir)
    used = [h for h in hosts.values() if h.peers]
    rem = Remote(args, hosts)

    print(REQUIREMENTS)
    for h in used:
        print("host %s (ssh %s): peers %s in %s" % (h.name, h.target, " ".join(map(str, h.peers)), h.dir))

    # The binary and its libraries, checked before anything is copied or started.
    res = rem.each([(h, "%s --version" % remote_path(h.ohmpeer)) for h in used])
    bad = [(n, r) for n, r in res.items() if r[0] != 0]
    for name, (rc, _, err) in bad:
        h = hosts[name]
        why = "ssh cannot reach it" if rc == 255 else "ohmpeer does not run there"
        print("ohm-launch: host %s (ssh %s): %s: %s" % (name, h.target, why, err or "exit %d" % rc),
              file=sys.stderr)
    if bad:
        return 1

    # Keys are made here; each host receives only its own peers' secrets.
    if args.insecure:
        topo = os.path.join(out, "topology.topo")
        if os.path.abspath(args.topology) != topo:
            with open(topo, "w") as f:
                f.write("\n".join(src_lines) + "\n")
    else:
        topo = L.keyed_topology(ohmpeer, src_lines, info, out)
    if args.config:
        shutil.copyfile(args.config, os.path.join(out, "config.ini"))
    for name in os.listdir(out):  # a fresh run starts fresh metrics
        if re.match(r"^peer-\d+\.(jsonl|log|ckpt)$", name):
            os.unlink(os.path.join(out, name))
    stale = {}
    for h in used:
        old = " ".join("peer-%d.jsonl peer-%d.ckpt peer-%d.pid" % (i, i, i) for i in h.peers)
        script = "umask 077 && mkdir -p %s && cd %s && rm -f %s && tar -xf -" % (h.rdir, h.rdir, old)
        rc, _, err = rem.run(h, script, stdin=upload_tar(out, topo, args.config, h), timeout=120)
        if rc != 0:
            stale[h.name] = err or "exit %d" % rc
    for name, err in stale.items():
        print("ohm-launch: host %s: cannot prepare %s: %s" % (name, hosts[name].dir, err), file=sys.stderr)
    if stale:
        return 1

    rounds = int(L.config_value(args, "train.rounds", "100"))
    peers = {pid: L.Peer(pid, info[pid]) for pid in sorted(info)}
    host_of = {pid: h for h in used for pid in h.peers}

    def start(p):
        h = host_of[p.pid]
        cmd = [remote_path(h.ohmpeer), "run", "--topology", "topology.topo", "--id", str(p.pid),
               "--out", "."]
        if args.config:
            cmd += ["--config", "config.ini"]
        for s in args.set:
            cmd += ["--set", shlex.quote(s)]
        if args.insecure:
            cmd += ["--set", "net.insecure=true"]
        script = "cd %s && echo $$ > peer-%d.pid && exec %s" % (h.rdir, p.pid, " ".join(cmd))
        p.log = open(os.path.join(out, "peer-%d.log" % p.pid), "a")
        # Own session: a Ctrl-C on the terminal reaches the launcher, not the ssh clients,
        # so the remote peers are stopped by pid rather than orphaned.
        p.proc = subprocess.Popen(rem.cmd(h, script), stdin=subprocess.DEVNULL, stdout=p.log,
                                  stderr=subprocess.STDOUT, start_new_session=True)

    interrupted = []
    signal.signal(signal.SIGINT, lambda *_: interrupted.append(1))
    signal.signal(signal.SIGTERM, lambda *_: interrupted.append(1))
    t0 = time.time()
    for p in peers.values():
        start(p)
    tty = sys.stdout.isatty() and not args.quiet
    failed = None
    timed_out = False
    last_print = 0.0
    every = 2.0  # seconds between two progress polls of a host
    while True:
        time.sleep(0.2)
        now = time.time()
        for h in used:
            if h.poll is not None:
                poll_finish(h, peers)
            elif now >= h.next_poll:
                poll_start(rem, h, peers)
                h.next_poll = now + every
        for p in peers.values():
            rc = p.proc.poll()
            if rc is None or p.status is not None:
                continue
            p.status = rc
            if rc != 0 and failed is None:
                failed = p
        timed_out = bool(args.timeout) and time.time() - t0 > args.timeout
        if failed or interrupted or timed_out:
            break
        if all(p.status is not None for p in peers.values()):
            break
        if tty and time.time() - last_print > 0.5:
            sys.stdout.write("\r" + L.progress_line(peers, rounds, t0))
            sys.stdout.flush()
            last_print = time.time()
        elif not tty and not args.quiet and time.time() - last_print > 10:
            print(L.progress_line(peers, rounds, t0), flush=True)
            last_print = time.time()
    if failed or interrupted or timed_out:
        stop_remote(rem, peers)
    wall = time.time() - t0
    for h in used:
        if h.poll is not None:
            poll_finish(h, peers, wait=True)
    for p in peers.values():
        if p.status is None and p.proc.poll() is not None:
            p.status = p.proc.returncode
        if p.log:
            p.log.close()
    if tty:
        sys.stdout.write("\r" + L.progress_line(peers, rounds, t0) + "\n")
    fetch_results(rem, out, peers)
    if failed:
        why = " (ssh failed)" if failed.status == 255 else ""
        print("ohm-launch: peer %d on %s failed (exit %s%s); stopped the others. Last lines of %s:" % (
            failed.pid, host_of[failed.pid].name, failed.status, why,
            os.path.join(out, "peer-%d.log" % failed.pid)), file=sys.stderr)
        try:
            for line in open(os.path.join(out, "peer-%d.log" % failed.pid)).read().splitlines()[-10:]:
                print("  " + line, file=sys.stderr)
        except OSError:
            pass
    summary, head, lines = L.write_summary(out, peers, rounds, wall, args)
    # Where each peer ran, for the record.
    summary["hosts"] = {h.name: h.peers for h in used}
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    print(head)
    print("\n".join(lines))
    print("summary: %s" % os.path.join(out, "summary.json"))
    if args.plot:
        L.plot(out, peers)
    if failed:
        return 1
    if interrupted:
        return 130
    if timed_out:
        print("ohm-launch: run aborted after --timeout %.0f s" % args.timeout, file=sys.stderr)
        return 1
    return 1 if any(p.status != 0 for p in peers.values()) else 0
