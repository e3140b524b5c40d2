"""The one exception type for user mistakes: the CLI prints its message as one line and exits with code 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input (unknown name, malformed file, impossible budget): the message says what is wrong and how to fix it."""
