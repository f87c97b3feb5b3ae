"""The runner's internals: case matrix, server lifecycle, sampling, progress, commands."""


class UsageError(Exception):
    """Bad input from the user: ``runner.py`` prints it as one line and exits 2."""
