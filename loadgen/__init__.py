"""Locust TCP echo load generator (master/worker), HDR latency, byte-exact checks.

`python -m loadgen --port P --connections N ...` runs a master and its local workers
(`python -m loadgen --help`); the result dict's fields are listed in results/SCHEMA.md
("loadgen").

  config     command line, resolved settings, the fd/port capacity check (pure)
  message    the bytes of message n, checked byte for byte (pure)
  histogram  HdrHistogram helpers: record, encode, merge, summary, fairness (pure)
  recorder   one worker's tally of the measure window (pure)
  result     the result dict and the human summary (pure)
  user       the EchoUser: one TCP connection, closed or open loop (gevent)
  worker     the Locust worker runner and its messages to the master (gevent)
  master     phases, local worker processes, merge, output, signals (gevent)

Importing this package imports neither gevent nor Locust; only `user`, `worker` and
`master` do.
"""
