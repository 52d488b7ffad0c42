"""Argument types shared by the magics and the command line (argparse ``type=`` callables)."""

from __future__ import annotations

import argparse

__all__ = ["parse_ranks", "positive_count", "positive_seconds"]


def positive_count(text: str) -> int:
    """A positive integer, e.g. a number of engines."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """A positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def parse_ranks(text: str) -> list[int]:
    """``"0,2-4"`` -> ``[0, 2, 3, 4]``."""
    ranks: set[int] = set()
    try:
        for part in text.split(","):
            lo, sep, hi = part.strip().partition("-")
            first, last = int(lo), int(hi) if sep else int(lo)
            if first < 0 or last < first:
                raise ValueError
            ranks.update(range(first, last + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid rank list {text!r}: use comma-separated ranks or ranges, e.g. 0,1 or 0-3"
        ) from None
    return sorted(ranks)
