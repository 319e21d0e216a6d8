"""Redis commands per delivered event: `INFO commandstats` on every node that serves,
read before and after a scenario, the `calls` of every command summed."""

from collections import Counter

import redis

from bench.harness import HOST

# Our own probe: the INFO of the first reading counts on each node by the second.
PROBE = "info"
TOP = 5  # commands named in the report, the most called first


class CommandCounts:
    """The bench.scale Meter of one Redis setup: commands run on its nodes."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self._before: dict[int, Counter] = {}

    def _read(self) -> dict[int, Counter]:
        counts = {}
        for port in self.ports:
            client = redis.Redis(host=HOST, port=port)
            try:
                stats = client.info("commandstats")
            finally:
                client.close()
            counts[port] = Counter(
                {name.removeprefix("cmdstat_"): v["calls"] for name, v in stats.items()}
            )
        return counts

    def start(self) -> None:
        """Read every node's counts."""
        self._before = self._read()

    def stop(self, deliveries: int) -> dict:
        """Commands since start(): in all, per delivery, each node's share (largest
        first) and the most called."""
        after = self._read()
        per_node = [after[p] - self._before[p] for p in self.ports]
        for counts in per_node:
            counts.pop(PROBE, None)
        commands = sum(per_node, Counter())
        calls = sum(commands.values())
        shares = sorted(
            (100 * sum(c.values()) / calls if calls else 0.0 for c in per_node),
            reverse=True,
        )
        return {
            "calls": calls,
            "per_delivery": calls / deliveries if deliveries else None,
            "busiest_node_percent": shares[0],
            # Lists: per phase only (bench.report.median_of takes numbers and dicts).
            "node_percents": shares,
            "top": commands.most_common(TOP),
        }
