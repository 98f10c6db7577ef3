"""ohmreport: a run (or several) at a glance, as one self-contained HTML page
(the program is ``ohm-report``; ``ohm-launch --report`` calls it).

    rundata   a run folder read into one object (standard library only)
    figures   the charts, drawn by matplotlib as SVG
    graph     the topology: networkx places the peers, matplotlib draws them,
              one data-peer element per peer
    page      the HTML page: header, figures, sortable tables, a small script
    cli       the command line

matplotlib and networkx are the Debian packages python3-matplotlib and
python3-networkx (docs/report.md says why these).
"""
