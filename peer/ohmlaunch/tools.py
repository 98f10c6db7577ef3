"""The ohmpeer and ohmtopo programs, asked instead of re-parsing their files.

Topology files are read by ``ohmtopo show --json`` and rewritten with keys by
``ohmtopo edit``; configuration values come from ``ohmpeer config --get``, so
the launcher follows exactly the C parsers' rules (comments, validation).
"""

import json
import os
import re
import shutil
import subprocess
import sys


class ToolError(Exception):
    """A tool could not be found or refused its input; the text says why."""


def _executable(path):
    return bool(path) and os.path.isfile(path) and os.access(path, os.X_OK)


class Tools:
    """Where ohmpeer and ohmtopo are, and the questions the launcher asks them."""

    def __init__(self, ohmpeer=None, ohmtopo=None, defaults=None):
        """ohmpeer/ohmtopo: paths given on the command line (or None). defaults:
        {name: [candidate paths]} from the entry point (build tree, install)."""
        defaults = defaults or {}
        self.ohmpeer = self._find("ohmpeer", ohmpeer, "OHMPEER", defaults.get("ohmpeer", []), [])
        # ohmtopo is usually beside ohmpeer (installed) or in the build tree's topology/.
        near = os.path.dirname(self.ohmpeer)
        self.ohmtopo = self._find("ohmtopo", ohmtopo, "OHMTOPO", defaults.get("ohmtopo", []),
                                  [os.path.join(near, "ohmtopo"),
                                   os.path.join(near, "..", "topology", "ohmtopo")])

    @staticmethod
    def _find(name, explicit, env, defaults, near):
        if explicit:
            if not _executable(explicit):
                raise ToolError("%s: not an executable (--%s)" % (explicit, name))
            return os.path.abspath(explicit)
        if os.environ.get(env):
            if not _executable(os.environ[env]):
                raise ToolError("%s: not an executable ($%s)" % (os.environ[env], env))
            return os.path.abspath(os.environ[env])
        for cand in list(defaults) + list(near) + [shutil.which(name)]:
            if _executable(cand):
                return os.path.abspath(cand)
        raise ToolError("cannot find the %s binary (build it, or pass --%s PATH)" % (name, name))

    @staticmethod
    def _run(argv, what):
        try:
            r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               universal_newlines=True)
        except OSError as e:
            raise ToolError("%s: %s" % (argv[0], e.strerror))
        if r.returncode != 0:
            raise ToolError("%s failed (exit %d): %s" % (what, r.returncode,
                                                        r.stderr.strip() or r.stdout.strip()))
        return r.stdout

    def topology(self, path):
        """The topology as `ohmtopo show --json` describes it (a dict: peers, edges, ...)."""
        text = self._run([self.ohmtopo, "show", "--json", path], "ohmtopo show %s" % path)
        try:
            return json.loads(text)
        except ValueError as e:
            raise ToolError("ohmtopo show %s: unreadable JSON: %s" % (path, e))

    def keyed_topology(self, src, keydir, dst):
        """Writes dst: src with every peer's public key from keydir/peer-<id>.pub."""
        self._run([self.ohmtopo, "edit", src, "--keys", keydir, "-o", dst],
                  "ohmtopo edit %s" % src)

    def config_values(self, keys, config=None, sets=()):
        """{key: text} as `ohmpeer run` with this --config and these --set would see them.
        An unknown key or an invalid config file is a ToolError."""
        argv = [self.ohmpeer, "config"]
        for k in keys:
            argv += ["--get", k]
        if config:
            argv += ["--config", config]
        for s in sets:
            argv += ["--set", s]
        lines = self._run(argv, "ohmpeer config").split("\n")
        if len(lines) < len(keys):
            raise ToolError("ohmpeer config: %d values for %d keys" % (len(lines), len(keys)))
        return dict(zip(keys, lines))

    def config_table(self, config=None, sets=()):
        """Every configuration key of the schema as [{"key", "value", "default"}]:
        the value a run with this --config and these --set takes, and the schema's
        default (from `ohmpeer config`), for reports that mark what a run changed."""
        rows = []
        for line in self._run([self.ohmpeer, "config"], "ohmpeer config").splitlines():
            m = re.match(r"^\[(\w+)\]\s+(\S+)\s+\S+\s+(\S+)", line)
            if m:
                d = m.group(3)
                rows.append({"key": "%s.%s" % (m.group(1), m.group(2)),
                             "default": "" if d == '""' else d})
        values = self.config_values([r["key"] for r in rows], config, sets)
        for r in rows:
            r["value"] = values[r["key"]]
        return rows

    def version(self):
        """`ohmpeer --version`: the version and the commit it was built from."""
        return self._run([self.ohmpeer, "--version"], "ohmpeer --version").strip()

    def keygen(self, prefix):
        """A CURVE key pair prefix.key / prefix.pub, kept if it exists already."""
        if os.path.exists(prefix + ".key") and os.path.exists(prefix + ".pub"):
            return
        self._run([self.ohmpeer, "keygen", "--out", prefix], "ohmpeer keygen %s" % prefix)

    def make_keys(self, ids, keydir):
        """A key pair per peer id in keydir (mode 0700), kept where present."""
        os.makedirs(keydir, exist_ok=True)
        os.chmod(keydir, 0o700)
        for pid in ids:
            self.keygen(os.path.join(keydir, "peer-%d" % pid))


def warn(msg):
    print("ohm-launch: " + msg, file=sys.stderr, flush=True)
