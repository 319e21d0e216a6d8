"""bench.recovery's results: per-user counts summed, and the report's rows."""

from bench.harness import percentile


def tally(result: dict) -> dict:
    """The counts over every user: lost, duplicated, out of order, mismatches."""
    totals = {
        "due": 0,
        "received": 0,
        "lost": 0,
        "duplicated": 0,
        "out_of_order": 0,
        "text_mismatch": 0,
        "arrival_mismatch": 0,
        "not_recovered": 0,
        "epochs_changed": 0,
        "unpositioned": 0,
        "cuts": 0,
        "recoveries": 0,
        "interrupted": 0,
        "replayed": 0,
        "connect_failures": 0,
        "latencies": [],
        "acks": [],
        "handshakes": [],
        "reasons": {},
        "errors": [],
        "anomalies": [],
    }
    for reader in result["readers"]:
        top = result["tops"][reader.room][1]
        due = set(range(reader.base + 1, top + 1))
        totals["due"] += len(due)
        totals["received"] += len(reader.seen) + reader.duplicates
        totals["lost"] += len(due - reader.seen.keys())
        totals["duplicated"] += reader.duplicates
        totals["out_of_order"] += reader.out_of_order
        content = result["stored"].get(reader.entry["message_id"])
        by_offset = "".join(reader.pieces[o] for o in sorted(reader.pieces))
        totals["text_mismatch"] += by_offset != content
        totals["arrival_mismatch"] += "".join(reader.arrival_text) != content
        totals["not_recovered"] += len(reader.not_recovered)
        for reason in reader.not_recovered:
            totals["reasons"][reason] = totals["reasons"].get(reason, 0) + 1
        for name in (
            "epochs_changed",
            "unpositioned",
            "cuts",
            "recoveries",
            "interrupted",
            "replayed",
            "connect_failures",
        ):
            totals[name] += getattr(reader, name)
        totals["latencies"] += reader.latencies
        totals["acks"] += reader.acks
        totals["handshakes"] += reader.handshakes[1:]  # reconnects only
        totals["errors"] += reader.errors
        totals["anomalies"] += reader.anomalies
    return totals


def _spread(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (
        f"{percentile(values, 50):.1f} / {percentile(values, 99):.1f}"
        f" / {max(values):.1f} ({len(values)} samples)"
    )


def report_rows(args, result: dict) -> list[tuple[str, str]]:
    """The measure/value rows of the report."""
    t = tally(result)
    worker = result["worker"]
    reasons = ", ".join(f"{k}: {v}" for k, v in sorted(t["reasons"].items()))
    cpu = " + ".join(f"{c:.1f}" for c in result["server_cpu"])
    wall = result["wall"]
    return [
        (
            "streams x deltas/s x seconds",
            f"{args.streams} x {args.rate:g} x {args.seconds:g}"
            f" ({result['tokens']} deltas + completion each)",
        ),
        (
            "churn",
            f"{args.churn:g} of the sockets reset each second, back after"
            f" 0-{1000 * args.jitter:.0f} ms",
        ),
        ("servers / database / layer", f"2 x uvicorn / {args.database} / redis"),
        ("sockets reset", str(t["cuts"])),
        ("reconnects with recover", f"{t['recoveries']} ({reasons or 'all ok'})"),
        ("connect failures (retried)", str(t["connect_failures"])),
        ("events due / received", f"{t['due']} / {t['received']}"),
        ("events replayed", str(t["replayed"])),
        ("events lost", str(t["lost"])),
        ("events duplicated", str(t["duplicated"])),
        ("events out of order", str(t["out_of_order"])),
        ("recovered:false", str(t["not_recovered"])),
        (
            "messages whose text differs from the stored content",
            f"{t['text_mismatch']} by offset, {t['arrival_mismatch']} as received",
        ),
        (
            "epoch changes, events without a position",
            f"{t['epochs_changed']}, {t['unpositioned']}",
        ),
        ("recovery latency p50 / p99 / max (ms)", _spread(t["latencies"])),
        ("of which connect sent -> ack (ms)", _spread(t["acks"])),
        ("recoveries cut again before done", str(t["interrupted"])),
        ("reconnect TCP + upgrade p50 / p99 / max (ms)", _spread(t["handshakes"])),
        (
            "servers CPU",
            f"{cpu} s in {wall:.1f} s"
            f" ({100 * sum(result['server_cpu']) / wall:.0f}% of a core)",
        ),
        ("worker CPU", f"{worker.get('cpu', float('nan')):.1f} s"),
        ("clients CPU", f"{result['clients_cpu']:.1f} s"),
        (
            "worker run time",
            f"{worker.get('duration', float('nan')):.1f} s for {args.seconds:g} s"
            f" of deltas (exit {result['worker_code']})",
        ),
    ]
