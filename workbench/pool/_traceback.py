"""Cell numbers in the tracebacks of the ranks.

An engine names the code it ran by its own execution count (``Cell In[1], line 3``), which
is not the number of the notebook cell that sent it. :func:`renumber_cells` puts the
notebook's number there (:func:`running_cell_number`), or no number where it is unknown
(``Cell, line 3``).
"""

from __future__ import annotations

import re
import sys

__all__ = ["renumber_cells", "running_cell_number"]

_ANSI = r"\x1b\[[0-9;]*m"
# A frame header at the start of a line: "Cell In[7], line 3", with or without colours.
_CELL = re.compile(rf"^((?:{_ANSI})*Cell)((?:{_ANSI}|[ \t])*)In\[\d+\]", re.MULTILINE)


def running_cell_number() -> int | None:
    """The execution count of the IPython cell running now, or None outside one.

    Read from the display hook's current result: ``InteractiveShell.execution_count`` is
    already the next cell's number while a cell runs (IPython 9) or still this one's
    (IPython 8).
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    result = getattr(getattr(shell, "displayhook", None), "exec_result", None)
    count = getattr(result, "execution_count", None)
    return count if isinstance(count, int) else None


def renumber_cells(traceback: str, number: int | None) -> str:
    """``traceback`` with each ``Cell In[N]`` frame header showing ``number`` instead of N,
    or ``Cell`` alone when ``number`` is None; colour codes are kept, nothing else changes."""

    def replace(match: re.Match[str]) -> str:
        cell, between = match.groups()
        if number is None:
            return cell + re.sub(r"[ \t]", "", between)
        return f"{cell}{between}In[{number}]"

    return _CELL.sub(replace, traceback)
