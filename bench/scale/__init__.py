"""The scale benchmark (`python -m bench.scale`): this project against python-socketio
and a bare `websockets` ceiling. `targets` says how each system is started and
reached, `clients` holds the measuring side's sockets, `scenarios` what is measured,
`emitter` the streaming scenario's emitter process; `__main__` runs them all and
reports through bench.report."""
