"""What every ``workbench`` command group shares: exit codes, the usage error, group help."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TypeAlias

from workbench.errors import WorkbenchError

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_STOPPED",
    "EXIT_USAGE",
    "Handler",
    "SubParsers",
    "UsageError",
    "group_help",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_STOPPED = 3  # stopped by SIGTERM/SIGUSR1 (a batch job's end): saved, resumable
EXIT_INTERRUPTED = 130

SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Handler: TypeAlias = Callable[[argparse.Namespace], int]


class UsageError(WorkbenchError):
    """Bad input from the user: reported on stderr as one message, exit code 2."""


def group_help(parser: argparse.ArgumentParser) -> Handler:
    """Handler for a command group called without its subcommand: show its help, exit 2."""

    def handler(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return EXIT_USAGE

    return handler
