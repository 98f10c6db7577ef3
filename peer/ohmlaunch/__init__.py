"""ohmlaunch: the launcher of ohmpeer runs (the program is ``ohm-launch``).

Modules, each with one job, imported only downwards (cli -> the others):

    cli        the command line: options, the plan of a run, the exit status
    tools      the ohmpeer and ohmtopo programs, asked for what they know
               (topologies as JSON, resolved configuration values, keys)
    supervise  the one supervision loop: start, watch, inject faults, restart,
               stop; the peers' state and metrics
    local      peers as local processes
    ssh        peers on other hosts, started over ssh
    summary    summary.json, summary.md, plots, consensus distances

Only the Python standard library is used.
"""
