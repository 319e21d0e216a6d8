"""The HTTP transport benchmark (`python -m bench.http`): the same server and the same
scale scenarios as bench.scale, once with WebSocket clients and once with HTTP
sessions (bench/rawhttp.py), side by side. `target` says how an HTTP client signs
in; `__main__` runs both and reports through bench.report."""
