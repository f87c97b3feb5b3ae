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
