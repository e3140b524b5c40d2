"""CLI subcommands: each module here exposes ``register(subparsers)``, which adds its parser and sets ``func``."""

COMMANDS = ("targets", "search", "report", "inspect", "build", "simulate", "db")
