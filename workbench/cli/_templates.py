"""``workbench templates list|copy``: the shipped notebook templates."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workbench.cli._common import EXIT_OK, SubParsers, UsageError, group_help

__all__ = ["add_parser"]


def add_parser(subparsers: SubParsers) -> None:
    """Add the ``templates`` command."""
    p = subparsers.add_parser("templates", help="list or copy the shipped notebook templates")
    sub = p.add_subparsers(dest="templates_command", metavar="COMMAND")
    sub.add_parser("list", help="list templates with their titles").set_defaults(
        handler=_cmd_templates_list
    )
    copy = sub.add_parser(
        "copy",
        help="copy a template (outputs cleared) to DEST",
        description="Copy template NAME to DEST (a file or folder; default: ./NAME.ipynb). "
        "Refuses to overwrite an existing file without --force.",
    )
    copy.add_argument("name", help="template name, as shown by `workbench templates list`")
    copy.add_argument("dest", nargs="?", type=Path, help="target file or folder (default: .)")
    copy.add_argument("--force", action="store_true", help="overwrite an existing file")
    copy.set_defaults(handler=_cmd_templates_copy)
    p.set_defaults(handler=group_help(p))


def _templates() -> dict[str, Path]:
    from workbench.cli._shared import shared_dir

    return {path.stem: path for path in sorted(shared_dir("notebooks").glob("*.ipynb"))}


def _title(path: Path) -> str:
    """First non-empty line of the first markdown cell, without leading '#'s."""
    from workbench.cli.notebook import read_notebook

    try:
        nb = read_notebook(path)
    except ValueError:
        return "(unreadable notebook)"
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.strip():
                    return line.strip().lstrip("#").strip()
    return ""


def _cmd_templates_list(args: argparse.Namespace) -> int:
    from workbench.cli._shared import shared_dir

    templates = _templates()
    if not templates:
        print(f"no notebook templates in {shared_dir('notebooks')}", file=sys.stderr)
        return EXIT_OK
    width = max(len(name) for name in templates)
    for name, path in templates.items():
        print(f"{name:<{width}}  {_title(path)}".rstrip())
    return EXIT_OK


def _cmd_templates_copy(args: argparse.Namespace) -> int:
    from workbench.cli.notebook import read_notebook

    templates = _templates()
    name = args.name.removesuffix(".ipynb")
    if name not in templates:
        known = ", ".join(templates) or "none"
        raise UsageError(f"no template named {args.name!r} (available: {known})")
    dest: Path = args.dest or Path.cwd()
    if dest.is_dir():
        dest = dest / f"{name}.ipynb"
    if dest.exists() and not args.force:
        raise UsageError(f"{dest} already exists; pass --force to overwrite it")
    if not dest.parent.is_dir():
        raise UsageError(f"cannot write {dest}: folder {dest.parent} does not exist")

    import nbformat

    nb = read_notebook(templates[name])
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nbformat.write(nb, str(dest))
    print(f"copied template {name!r} to {dest}")
    return EXIT_OK
