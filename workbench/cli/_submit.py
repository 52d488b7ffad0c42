"""``workbench submit NOTEBOOK``: a notebook as a Slurm batch job; ``workbench jobs``: those
submitted, and how they ended.

The job runs ``workbench run`` inside its allocation (a pool the notebook starts with
``%wb start`` is a step of it, no second job), saving the output notebook after every cell.
Slurm sends ``SIGUSR1`` ``--save-before`` seconds before the time limit (``--signal=B:USR1``:
to ``workbench run`` only, which the batch script ``exec``s); the run then saves, stops its
kernel and pool, and exits with code 3. ``workbench submit NOTEBOOK -o OUT --resume`` submits
a job that goes on from the first cell that did not finish.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from workbench.cli._common import EXIT_OK, SubParsers, UsageError
from workbench.cli.options import positive_count, positive_seconds

__all__ = ["add_parser", "batch_script", "jobs_file"]


def jobs_file() -> Path:
    """Where submitted notebook jobs are listed (``$XDG_DATA_HOME/workbench/jobs.jsonl``)."""
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return Path(data) / "workbench" / "jobs.jsonl"


def add_parser(subparsers: SubParsers) -> None:
    """Add the ``submit`` and ``jobs`` commands."""
    p = subparsers.add_parser(
        "submit",
        help="run a notebook as a Slurm batch job (saved after every cell)",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument("notebook", type=Path, help="the .ipynb file to run")
    p.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a parameter, as for `workbench run` (repeatable)",
    )
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        help="the output notebook (default: <stem>.out.ipynb beside the notebook)",
    )
    p.add_argument("--nodes", type=positive_count, default=None, help="number of nodes")
    p.add_argument(
        "-n",
        "--ntasks",
        type=positive_count,
        default=None,
        help="tasks (the engines of `%%wb start`; default: Slurm's)",
    )
    p.add_argument("--time", default=None, help="time limit, e.g. 30 or 1:00:00")
    p.add_argument("--partition", default=None, help="Slurm partition (default: site profile)")
    p.add_argument("--account", default=None, help="Slurm account (default: site profile)")
    p.add_argument("--extra", default=None, help='more sbatch options, e.g. "--qos=debug"')
    p.add_argument(
        "--setup",
        action="append",
        default=None,
        metavar="LINE",
        help="a shell line run before the notebook (repeatable)",
    )
    p.add_argument(
        "--save-before",
        type=positive_seconds,
        default=120.0,
        metavar="S",
        help="seconds before the time limit when the run saves and stops (120)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="go on with the run saved in -o OUTPUT (see `workbench run --resume`)",
    )
    p.set_defaults(handler=_cmd_submit)
    jobs = subparsers.add_parser("jobs", help="list submitted notebook jobs and their state")
    jobs.set_defaults(handler=_cmd_jobs)


def batch_script(
    notebook: Path,
    output: Path,
    params: list[str],
    sbatch: list[str],
    *,
    setup: list[str],
    resume: bool,
) -> str:
    """The batch script: ``sbatch`` options, setup lines, then ``exec workbench run``."""
    run = [sys.executable, "-m", "workbench.cli", "run", str(notebook), "-o", str(output),
           "--no-cell-timeout", "--cwd", str(notebook.parent)]  # fmt: skip
    for item in params:
        run += ["-p", item]
    run += ["--resume"] if resume else []
    lines = ["#!/bin/bash", *(f"#SBATCH {opt}" for opt in sbatch), *setup]
    lines.append("exec " + shlex.join(run))  # exec: Slurm's SIGUSR1 reaches workbench run
    return "\n".join(lines) + "\n"


def _sbatch_options(args: argparse.Namespace, output: Path) -> list[str]:
    from workbench.pool import SlurmOptions, load_site

    site = load_site()
    opts = SlurmOptions(
        site.pick("partition", args.partition),
        site.pick("time", args.time),
        site.pick("account", args.account),
        args.nodes,
        site.pick("extra", args.extra),
    )
    out = [f"--job-name=wb-{args.notebook.stem}", "--export=ALL",
           f"--output={output.parent / (output.stem + '-%j.log')}",
           f"--chdir={args.notebook.resolve().parent}",
           f"--signal=B:USR1@{int(args.save_before)}"]  # fmt: skip
    for name in ("partition", "time", "account", "nodes"):
        value = getattr(opts, name)
        out += [f"--{name}={value}"] if value else []
    out += [f"--ntasks={args.ntasks}"] if args.ntasks else []
    return out + opts.extra_options()


def _cmd_submit(args: argparse.Namespace) -> int:
    from workbench.cli.notebook import parse_parameters, read_notebook
    from workbench.pool import load_site

    try:
        parse_parameters(args.param)  # checked here, before anything is submitted
        read_notebook(args.notebook)
        notebook = args.notebook.resolve()
        output = (args.output or notebook.with_name(f"{notebook.stem}.out.ipynb")).resolve()
        if args.resume and not output.is_file():
            raise UsageError(f"--resume goes on with {output}, which does not exist yet")
        sbatch = _sbatch_options(args, output)
        setup = list(args.setup or load_site().setup)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    script = batch_script(notebook, output, args.param, sbatch, setup=setup, resume=args.resume)
    record = jobs_file()
    record.parent.mkdir(parents=True, exist_ok=True)
    path = record.parent / "jobs" / f"{notebook.stem}-{time.strftime('%Y%m%d-%H%M%S')}.sbatch"
    path.parent.mkdir(exist_ok=True)
    path.write_text(script)
    try:
        done = subprocess.run(
            ["sbatch", "--parsable", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except FileNotFoundError:
        raise UsageError("sbatch is not on PATH: submit from a Slurm login node") from None
    if done.returncode != 0:
        said = done.stderr.strip().removeprefix("sbatch: error: ")
        raise UsageError(f"sbatch refused the job: {said} (script: {path})")
    job = done.stdout.strip().split(";")[0]
    log = output.parent / f"{output.stem}-{job}.log"
    with open(record, "a") as f:
        f.write(
            json.dumps(
                {
                    "job": job,
                    "notebook": str(notebook),
                    "output": str(output),
                    "log": str(log),
                    "script": str(path),
                    "t": time.time(),
                }
            )
            + "\n"
        )
    print(f"submitted slurm job {job}: {notebook.name} -> {output} (log: {log})")
    print("`workbench jobs` shows its state; the output is saved after every cell")
    return EXIT_OK


def _state(entry: dict[str, Any]) -> str:
    """``pending (Priority)``, ``running, 4:59 left``, or how the run ended (from the output
    notebook's run record)."""
    from workbench.pool import job_info

    info = job_info(entry["job"])
    state = str(info["job_state"])
    if state == "PENDING":
        return f"pending ({info['job_reason']})"
    if state == "RUNNING":
        return "running" + (f", {info['time_left']} left" if info["time_left"] else "")
    try:
        with open(entry["output"]) as f:
            run = json.load(f).get("metadata", {}).get("workbench", {})
    except (OSError, ValueError):
        return f"{state.lower()} (no output notebook: see {entry['log']})"
    where = f" in cell {run['cell']}" if run.get("cell") else ""
    if run.get("state") == "stopped":
        return f"stopped{where} before the time limit: resubmit with -o {entry['output']} --resume"
    if run.get("state") == "running":  # the job was killed before the run could say
        return f"{state.lower()} while running{where} (see {entry['log']})"
    return f"{run.get('state', state.lower())}{where}"


def _cmd_jobs(args: argparse.Namespace) -> int:
    record = jobs_file()
    entries = []
    if record.is_file():
        for line in record.read_text().splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue  # a line cut short by a full disk: the others still show
    if not entries:
        print(f"no notebook jobs submitted (listed in {record})")
        return EXIT_OK
    rows = [("job", "state", "notebook", "output")]
    rows += [(e["job"], _state(e), Path(e["notebook"]).name, e["output"]) for e in entries[-50:]]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r[:3], widths, strict=True)) + "  " + r[3])
    return EXIT_OK
