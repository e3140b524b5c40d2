"""The rich consoles the commands print to: tables keep their columns even when output goes to a file or a pipe."""

from __future__ import annotations

import sys

from rich.console import Console

PIPE_WIDTH = 160  # rich assumes 80 columns off a terminal, which squeezes a ten-column table unreadably


def console(stderr: bool = False) -> Console:
    """A console on stdout (results) or stderr (progress)."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else PIPE_WIDTH)
