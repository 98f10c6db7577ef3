"""ohm-report's command line.

    ohm-report RUN_DIR... [-o FILE] [--label NAME]...

One RUN_DIR: the run's report. Several: a comparison (honest means overlaid,
a side-by-side table, each run's graph and peers below). Exit status 0; 1 when
a folder cannot be read or the page cannot be written; 2 for usage errors.
"""

import argparse
import os
import sys

from . import rundata


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="ohm-report",
        description="Write one self-contained HTML page about one run folder of ohm-launch, "
                    "or a comparison of several.")
    ap.add_argument("runs", nargs="+", metavar="RUN_DIR", help="ohm-launch --out folder(s)")
    ap.add_argument("-o", "--out", help="the page (default: RUN_DIR/report.html for one run, "
                                        "./report.html for several)")
    ap.add_argument("--label", action="append", default=[],
                    help="a name per RUN_DIR, in order (default: the folder names)")
    args = ap.parse_args(argv)
    if args.label and len(args.label) != len(args.runs):
        ap.error("--label: %d names for %d runs" % (len(args.label), len(args.runs)))
    return args


def labels(dirs):
    """Folder names, with their parent where two would read the same."""
    base = [os.path.basename(os.path.abspath(d).rstrip("/")) for d in dirs]
    if len(set(base)) == len(base):
        return base
    return [os.path.join(*os.path.abspath(d).rstrip("/").split(os.sep)[-2:]) for d in dirs]


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    names = args.label or labels(args.runs)
    try:
        runs = [rundata.Run(d, n) for d, n in zip(args.runs, names)]
    except (rundata.RunError, OSError, ValueError, KeyError) as e:
        print("ohm-report: %s" % e, file=sys.stderr)
        return 1
    # The plotting libraries load only now: reading and usage errors come first and fast.
    import matplotlib
    import networkx

    from . import page
    versions = "matplotlib %s, networkx %s" % (matplotlib.__version__, networkx.__version__)
    text = page.single(runs[0], versions) if len(runs) == 1 else page.comparison(runs, versions)
    out = args.out or (os.path.join(runs[0].dir, "report.html") if len(runs) == 1
                       else "report.html")
    tmp = out + ".tmp"
    try:
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, out)
    except OSError as e:
        print("ohm-report: %s: %s" % (out, e.strerror), file=sys.stderr)
        return 1
    print("report: %s (%d KB)" % (out, (len(text.encode()) + 1023) // 1024))
    return 0
