"""Locust TCP echo load generator (master/worker), HDR latency, byte-exact checks."""
