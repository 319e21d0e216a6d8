"""The benchmarks (docs/benchmarks.md), each run from the project root with -m:

    python -m bench.stream   chat streaming through the emitter, with DB writes
    python -m bench.notes    collaborative notes: check costs, join, relay
    python -m bench.scale    scale against python-socketio and a bare ceiling

`harness` holds what they share (services, processes, measures), `report` their
tables; `socketio_server` (the reference), `ws_server` (the ceiling) and `rawws` (the
frame-counting client) serve the scale benchmark.
"""
