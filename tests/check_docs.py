#!/usr/bin/env python3
"""The documentation check (meson test `docs`), and the generator of docs/config.md.

    check_docs.py --ohmpeer BIN --srcdir DIR            check; exit 1 on any failure
    check_docs.py --ohmpeer BIN --srcdir DIR --write    regenerate docs/config.md (ninja docs)

Checks, each failure printed as one line naming the file:
  1. docs/config.md is exactly what `ohmpeer config --markdown` prints (no drift
     from the schema in src/core/ohm_config_schema.c);
  2. README.md links every page under docs/;
  3. every relative link in README.md and docs/ names an existing file, and an
     anchor (page.md#anchor) an existing heading of that page;
  4. every `docs/<page>.md` a source file cites names an existing page, and a
     citation of the form docs/<page>.md, section "Title" an existing heading;
  5. nothing cites a design document outside the repository.
Standard library only; runs in well under a second.
"""
import argparse
import difflib
import os
import re
import subprocess
import sys

CODE_DIRS = ["src", "peer", "robust", "topology", "tests", "examples"]
CODE_EXT = (".c", ".h", ".py", ".sh", ".build", ".sbatch", ".gp", ".ini", ".topo")
CODE_NAMES = ("ohm-launch", "ohm-report")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CITE = re.compile(r'docs/([A-Za-z0-9_./-]+\.md)(?:,? section "([^"]+)")?')
FORBIDDEN = [re.compile(r"\bDESIGN section"), re.compile(r"\bDESIGN\.md\b")]


def headings(path):
    """Heading titles of a markdown file (outside code fences) and their anchors."""
    titles, anchors, seen = [], set(), {}
    fence = False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.lstrip().startswith("```"):
                fence = not fence
                continue
            m = None if fence else re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
            if not m:
                continue
            title = m.group(1)
            titles.append(title)
            slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            anchors.add(slug if n == 0 else "%s-%d" % (slug, n))
    return titles, anchors


def md_pages(root):
    out = []
    for dirpath, _, files in os.walk(os.path.join(root, "docs")):
        out += [os.path.join(dirpath, f) for f in files if f.endswith(".md")]
    return sorted(out)


def links_of(path):
    fence, out = False, []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.lstrip().startswith("```"):
                fence = not fence
            elif not fence:
                out += [(n, m.group(1)) for m in LINK.finditer(line)]
    return out


def check_config(root, ohmpeer, errors, write):
    want = subprocess.run([ohmpeer, "config", "--markdown"], check=True,
                          capture_output=True, text=True).stdout
    path = os.path.join(root, "docs", "config.md")
    if write:
        with open(path, "w", encoding="utf-8") as f:
            f.write(want)
        print("wrote", path)
        return
    have = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
    if have != want:
        diff = difflib.unified_diff(have.splitlines(), want.splitlines(), "docs/config.md",
                                    "ohmpeer config --markdown", lineterm="", n=0)
        errors.append("docs/config.md differs from `ohmpeer config --markdown` "
                      "(regenerate: ninja -C build docs):\n  " + "\n  ".join(list(diff)[:40]))


def check_links(root, errors):
    readme = os.path.join(root, "README.md")
    pages = md_pages(root)
    linked = set()
    for src in [readme] + pages:
        rel_src = os.path.relpath(src, root)
        for line, target in links_of(src):
            if re.match(r"[a-z]+:", target):
                continue  # http:, https:, mailto:
            file_part, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(src), file_part)) if file_part \
                else src
            if not os.path.exists(dest):
                errors.append("%s:%d: link to missing %s" % (rel_src, line, target))
                continue
            if src == readme:
                linked.add(dest)
            if anchor and dest.endswith(".md") and anchor not in headings(dest)[1]:
                errors.append("%s:%d: link to missing heading %s" % (rel_src, line, target))
    for p in pages:
        if p not in linked:
            errors.append("README.md: does not link %s" % os.path.relpath(p, root))


def code_files(root):
    for d in CODE_DIRS:
        for dirpath, dirs, files in os.walk(os.path.join(root, d)):
            dirs[:] = [x for x in dirs if x != "corpus"]
            for f in files:
                if f.endswith(CODE_EXT) or f in CODE_NAMES or f == "meson.build":
                    yield os.path.join(dirpath, f)


def check_citations(root, errors):
    cache = {}
    files = list(code_files(root)) + [os.path.join(root, "meson.build")]
    files += [os.path.join(root, "README.md")] + md_pages(root)
    for path in files:
        rel = os.path.relpath(path, root)
        try:
            text = open(path, encoding="utf-8").read()
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        for n, line in enumerate(text.splitlines(), 1):
            for bad in FORBIDDEN:
                if bad.search(line):
                    errors.append("%s:%d: cites a document outside the repository: %s"
                                  % (rel, n, line.strip()))
            if path.endswith(".md"):
                continue  # pages link with [..](..), checked above
            for m in CITE.finditer(line):
                page = os.path.join(root, "docs", m.group(1))
                if not os.path.exists(page):
                    errors.append("%s:%d: cites missing docs/%s" % (rel, n, m.group(1)))
                    continue
                if m.group(2):
                    titles = cache.setdefault(page, [t.lower() for t in headings(page)[0]])
                    if m.group(2).lower() not in titles:
                        errors.append('%s:%d: cites missing section "%s" of docs/%s'
                                      % (rel, n, m.group(2), m.group(1)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ohmpeer", required=True)
    ap.add_argument("--srcdir", required=True)
    ap.add_argument("--write", action="store_true", help="regenerate docs/config.md")
    a = ap.parse_args()
    root = os.path.abspath(a.srcdir)
    errors = []
    check_config(root, a.ohmpeer, errors, a.write)
    if a.write:
        return 0
    check_links(root, errors)
    check_citations(root, errors)
    for e in errors:
        print(e)
    print("docs: %d problem(s)" % len(errors) if errors else "docs: ok")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
