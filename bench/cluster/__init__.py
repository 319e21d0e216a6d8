"""The Redis Cluster benchmark (`python -m bench.cluster`): bench.scale's fan-out and
streaming scenarios on one private redis-server and on a private Redis Cluster, in
the same run. `setups` starts the two and switches this process onto one, `ops`
counts the Redis commands a scenario costs; `__main__` runs the rounds and reports
through bench.report."""
