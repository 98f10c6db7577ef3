"""Energy and latency estimates of a run from the peers' counters.

Each peer's final metrics line counts what its tiles did ("analog": pulses,
pulse slots, vectors read, conversions; per tile too) and what it sent
(bytes_sent). Multiplied by the per-event constants of the [energy] config
section these give estimates, not measurements: docs/energy.md gives the
model, each constant's source and what is left out.

    reads      read_cell_j x cells read, per vector: rows x cols for forward
               and backward reads, rows for a transfer's column read
    adc, dac   adc_j x output conversions, dac_j x input conversions
    pulses     pulse_j x (update pulses + programming pulses)
    network    net_byte_j x bytes sent
    latency    read_s x vectors read + pulse_s x pulse slots (the trains of
               stochastic updates and the longest burst of each per-cell
               programming operation), one after another

Reads spent on evaluations measure the run and are reported apart
(evaluation_j, evaluation_s), never in the totals.
"""

KEYS = ["energy.pulse_j", "energy.pulse_s", "energy.read_cell_j", "energy.read_s",
        "energy.adc_j", "energy.dac_j", "energy.net_byte_j"]

LABEL = ("estimate from the [energy] constants (docs/energy.md), not a measurement")

PARTS = ("reads", "adc", "dac", "pulses", "network")


def constants(values):
    """{short name: float} from {"energy.pulse_j": "1e-15", ...}."""
    return {k.split(".", 1)[1]: float(v) for k, v in values.items() if k in KEYS}


def _tile_vectors(t, eval_share):
    """(training forward+backward vectors, transfer vectors) of one tile."""
    fb = t.get("forward_mvms", 0) + t.get("backward_mvms", 0) - eval_share
    return max(0, fb), t.get("transfer_mvms", 0)


def peer_estimate(row, c):
    """The estimate of one peer from its final metrics line `row` and the
    constants `c` (constants()). None when the line is missing."""
    if not row:
        return None
    an = row.get("analog")
    parts = dict.fromkeys(PARTS, 0.0)
    parts["network"] = c["net_byte_j"] * row.get("bytes_sent", 0)
    est = {"energy_j": 0.0, "analog_latency_s": 0.0, "parts_j": parts, "evaluation_j": 0.0,
           "evaluation_s": 0.0, "analog": an is not None, "pulses_counted": None}
    if an:
        tiles = an.get("per_tile") or []
        ev = an.get("eval") or {}
        share = ev.get("forward_mvms", 0) / len(tiles) if tiles else 0
        vectors = 0.0
        for t in tiles:
            fb, tr = _tile_vectors(t, share)
            parts["reads"] += c["read_cell_j"] * t["rows"] * (t["cols"] * fb + tr)
            est["evaluation_j"] += c["read_cell_j"] * t["rows"] * t["cols"] * share
            vectors += fb + tr
        parts["adc"] = c["adc_j"] * max(0, an.get("adc", 0) - ev.get("adc", 0))
        parts["dac"] = c["dac_j"] * max(0, an.get("dac", 0) - ev.get("dac", 0))
        est["evaluation_j"] += c["adc_j"] * ev.get("adc", 0) + c["dac_j"] * ev.get("dac", 0)
        parts["pulses"] = c["pulse_j"] * (an.get("update_pulses", 0) + an.get("program_pulses", 0))
        slots = an.get("train_slots", 0) + an.get("program_slots", 0)
        est["analog_latency_s"] = c["read_s"] * vectors + c["pulse_s"] * slots
        est["evaluation_s"] = c["read_s"] * ev.get("forward_mvms", 0)
        # Expected-value updates apply a mean and fire no pulses: say so rather
        # than report their update energy as zero.
        est["pulses_counted"] = an.get("update_pulses", 0) > 0 or an.get("train_slots", 0) > 0 \
            or an.get("backward_mvms", 0) == 0
    est["energy_j"] = sum(parts.values())
    return est


def run_estimate(finals, c):
    """summary.json's estimate fields from {peer id: final line or None}."""
    per = {pid: peer_estimate(r, c) for pid, r in sorted(finals.items())}
    per = {pid: e for pid, e in per.items() if e}
    if not per:
        return {}
    total_parts = {k: sum(e["parts_j"][k] for e in per.values()) for k in PARTS}
    lat = [e["analog_latency_s"] for e in per.values()]
    out = {
        "energy_j": {
            "estimate": LABEL,
            "total": sum(total_parts.values()),
            "analog": total_parts["reads"] + total_parts["adc"] + total_parts["dac"]
            + total_parts["pulses"],
            "network": total_parts["network"],
            "parts": total_parts,
            "evaluation": sum(e["evaluation_j"] for e in per.values()),
            "per_peer": {str(p): e["energy_j"] for p, e in per.items()},
            "per_peer_parts": {str(p): e["parts_j"] for p, e in per.items()},
        },
        "analog_latency_s": {
            "estimate": LABEL + "; each peer's tiles one operation after another",
            "total": sum(lat),
            "max": max(lat),
            "per_peer": {str(p): e["analog_latency_s"] for p, e in per.items()},
        },
        "energy_constants": c,
    }
    counted = [e["pulses_counted"] for e in per.values() if e["analog"]]
    if counted and not all(counted):
        out["energy_j"]["note"] = ("expected-value updates fire no pulses: their update energy "
                                   "and latency are not counted (device.granular = true or "
                                   "device.update = stochastic fire whole pulses)")
    counters = {}
    for r in finals.values():
        for k, v in ((r or {}).get("analog") or {}).items():
            if isinstance(v, int) and not isinstance(v, bool) and k != "tiles":
                counters[k] = counters.get(k, 0) + v
    if counters:
        out["analog_counters"] = counters
    return out
