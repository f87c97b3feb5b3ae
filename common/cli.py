"""The command lines' one way of refusing bad input: a :class:`UsageError` whose text is the
one line printed before exit 2, never argparse's usage dump or a traceback."""

from __future__ import annotations

import argparse
from typing import NoReturn


class UsageError(Exception):
    """Bad input from the user; ``str(e)`` is one line saying what is wrong."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that raises :class:`UsageError` instead of printing usage and
    exiting; with ``prog_in_errors`` the message starts with the program's name."""

    def __init__(self, *args, prog_in_errors: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.prog_in_errors = prog_in_errors

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}" if self.prog_in_errors else message)


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (v > 0 and v != float("inf")):
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return v


def positive_int_list(text: str) -> list[int]:
    """An argparse type: a comma list of integers > 0, e.g. ``1000,10000``."""
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a list like 1000,10000, got {text!r}") \
            from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected integers > 0, got {text!r}")
    return values
