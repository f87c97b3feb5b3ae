"""Locust TCP echo load generator (master/worker), HDR latency, byte-exact checks.

`python -m loadgen --port P --connections N ...` runs a master and its local workers
(`python -m loadgen --help`); `python -m loadgen worker --master HOST:PORT` a worker on
any host, which serves case after case; the result dict's fields are listed in
results/SCHEMA.md ("loadgen").

  config     command line, resolved settings, the fd/port capacity check (pure)
  message    the bytes of message n, checked byte for byte (pure)
  histogram  HdrHistogram helpers: bucket counts, fold, encode, merge, summary (pure)
  pacing     the open-loop schedule of a worker's connections (pure)
  recorder   one worker's tally of the measure window and its own lag (pure)
  result     the result dict and the human summary (pure)
  crew       the workers of a case: joined, fixed, late, lost (pure)
  driver     every connection of a worker on one epoll, in one greenlet (gevent)
  user       the EchoUser: the Locust handle of one connection (gevent)
  worker     the worker process: a Locust worker runner per case, its messages (gevent)
  master     admission, phases, local workers, liveness, merge, output (gevent)

Importing this package imports neither gevent nor Locust; only `driver`, `user`, `worker`
and `master` do.
"""
