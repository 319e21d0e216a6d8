"""Recovery under churn (issue 16): sockets cut mid-stream come back to either of two
instances, present their positions, and what each got is checked against the store.

    .venv/bin/python -m bench.recovery --streams 200 --rate 50 --seconds 30

Processes, over the real Redis (a key prefix of the run's own) and a fresh database:
  servers two uvicorn instances (realtime.launcher.Fleet, no cleanup worker)
  worker  bench.stream's worker: one chat emitter per stream (chats.emitter, what the
          completions endpoint runs), `--rate` deltas/s for `--seconds`, then
          chat:completion; it persists to the database
  clients this process: one socket per user (bench/rawws.py), first on instance
          i % 2. Each second `--churn` of the connected sockets are reset (TCP RST,
          no close frame); each comes back after a random 0..`--jitter` s, to a
          random instance, with connect's `recover`: its previous sid and the last
          position it saw in its user room (docs/protocol.md §8).

Counted per user, over all its connections, against the room's final position and
the stored message: events lost (offsets after the first connect's position, up to
the room's last, never received), duplicated (an offset received twice), out of order
(an offset below one already received), text that differs from the stored content,
and recovered:false. Recovery latency: from sending `connect` to receiving the last
replayed event (the ack's recovery offset), or to the ack when nothing was replayed.
"""
