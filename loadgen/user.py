"""The TCP echo User: one Locust user is the handle of one TCP connection.

One user per connection keeps Locust's model intact: spawn rate = connect rate, users =
connections, users stopped by the runner. What a connection does is not done in the
user's greenlet but by the worker's driver (:mod:`loadgen.driver`), which runs the
messages of all of the worker's connections on one epoll: a greenlet switch, a gevent
timer and gevent's socket wrappers per message would cost a worker several times the CPU
of the message itself.

Lifecycle of a user: it gets its sequence numbers and its open-loop phase (from the run's
seed, its worker and its number), asks the driver for the ramp (connect and complete one
echo; after a failure, counted by the driver, it backs off for about
:data:`RAMP_BACKOFF_S` and asks again; failures of the very first connect are connect
errors), and then holds: the driver starts its load when the master ends the ramp
("lg_go"). When the runner stops the user, the driver closes the connection. It fires no
``events.request``: that feeds only Locust's millisecond statistics, which are not used
(latency goes into HdrHistogram counts in µs).
"""

from __future__ import annotations

import random

import gevent
from locust import User, constant, task

RAMP_BACKOFF_S = 0.5


def hold_connection(env) -> None:
    """One connection, from its ramp until the user is killed (see the module docstring)."""
    rec, driver, cfg = env.loadgen_recorder, env.loadgen_driver, env.loadgen_config
    uid = rec.new_user()
    # A Random per user keeps its numbers reproducible; it is dropped after these two
    # draws (its state is ~2.5 KB, times 5,000 users).
    rng = random.Random(f"{cfg['seed']}/{env.runner.worker_index}/{uid}")
    c = driver.attach(uid, rng.getrandbits(64), rng.random())
    del rng
    try:
        while not driver.ramp(c):
            gevent.sleep(RAMP_BACKOFF_S * (0.5 + random.random()))
        gevent.get_hub().switch()  # until killed: the driver runs the connection
    finally:
        driver.drop(c)


class EchoUser(User):
    """One TCP echo connection; its single task lasts for the user's whole life."""

    wait_time = constant(0)

    @task
    def echo(self) -> None:
        hold_connection(self.environment)
