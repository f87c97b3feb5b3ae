"""The TCP echo User: one Locust user is the handle of one TCP connection.

One user per connection keeps Locust's model intact: spawn rate = connect rate, users =
connections, users stopped by the runner. What a connection does is done by the worker's
driver (:mod:`loadgen.driver`), which runs the messages of all of the worker's connections
on one epoll: a greenlet switch, a gevent timer and gevent's socket wrappers per message
would cost a worker several times the CPU of the message itself.

So a user runs no code of its own. Started by the runner, it takes its sequence numbers
and its open-loop phase (from the run's seed, its worker and its number), hands its
connection to the driver (which ramps it: connect, one echo, retried after a back-off;
then it waits for "lg_go") and stands in the runner's group as a greenlet that is never
started: Locust counts it as a running user, and stopping or killing it closes the
connection. A started greenlet would hold a Python data stack for its whole life (about
10 KiB per connection, measured at 10,000). It fires no ``events.request``: that feeds
only Locust's millisecond statistics, which are not used (latency goes into HdrHistogram
counts in µs).
"""

from __future__ import annotations

import random

from gevent import Greenlet
from gevent.pool import Group
from locust import User, constant, task


def _never_runs(user: User) -> None:
    raise AssertionError("an EchoUser's greenlet is a handle; it is never started")


class EchoUser(User):
    """One TCP echo connection, run by the worker's driver."""

    wait_time = constant(0)

    def start(self, group: Group) -> Greenlet:
        env = self.environment
        rec, driver, cfg = env.loadgen_recorder, env.loadgen_driver, env.loadgen_config
        uid = rec.new_user()
        # A Random per user keeps its numbers reproducible; dropped after these two draws.
        rng = random.Random(f"{cfg['seed']}/{env.runner.worker_index}/{uid}")
        self.conn = driver.attach(uid, rng.getrandbits(64), rng.random())
        # Locust finds a user from its greenlet's first argument.
        handle = Greenlet(_never_runs, self)
        handle.rawlink(self._stopped)
        group.add(handle)
        self._greenlet, self._group = handle, group
        driver.ramp(self.conn)
        return handle

    def _stopped(self, _handle: Greenlet) -> None:
        """The runner killed the handle: the connection closes."""
        self.environment.loadgen_driver.drop(self.conn)

    @task
    def echo(self) -> None:
        _never_runs(self)
