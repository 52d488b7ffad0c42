"""Where the controller listens for engines on other nodes: an address of this machine that the
compute nodes reach, chosen without the user's help.

In order: the interface named by ``controller_interface`` (argument or site profile); the
address this machine sends from toward the nodes (the kernel's routing table, read with a
UDP ``connect`` that sends nothing), once the nodes' addresses are known (the allocation's
nodes, or the partition's for a new job); a high-speed interface (``hsn*``, ``ib*``); the
address of this host's name. Local pools never come here: they listen on loopback only.
"""

from __future__ import annotations

import ipaddress
import socket
import subprocess
from collections import Counter

import psutil

from workbench._timeouts import QUERY
from workbench.errors import InvalidValueError

__all__ = [
    "controller_address",
    "host_addresses",
    "node_addresses",
    "partition_nodes",
    "source_address",
    "try_instead",
]

_FAST = ("hsn", "ib", "hfi", "ipogif")  # Slingshot, InfiniBand, Omni-Path, Aries names


def host_addresses() -> dict[str, str]:
    """This machine's IPv4 addresses, by interface, loopback left out."""
    out: dict[str, str] = {}
    for name, addrs in psutil.net_if_addrs().items():
        for a in addrs:
            if a.family == socket.AF_INET and not ipaddress.ip_address(a.address).is_loopback:
                out.setdefault(name, a.address)
    return out


def _run(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=QUERY, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout if done.returncode == 0 else ""


def partition_nodes(partition: str | None) -> list[str]:
    """The nodes of ``partition`` (default: the default partition), as ``sinfo`` lists them."""
    argv = ["sinfo", "-h", "-N", "-o", "%N"] + (["-p", partition] if partition else [])
    if not partition:  # the default partition is the one sinfo marks with '*'
        parts = _run(["sinfo", "-h", "-o", "%P"]).split()
        default = next((p[:-1] for p in parts if p.endswith("*")), None)
        argv += ["-p", default] if default else []
    return sorted(set(_run(argv).split()))


def node_addresses(nodes: list[str]) -> list[str]:
    """The addresses of ``nodes``: Slurm's ``NodeAddr``, else what their names resolve to."""
    found = []
    for node in nodes:
        info = _run(["scontrol", "-o", "show", "node", node])
        addr = next((f[len("NodeAddr="):] for f in info.split() if f.startswith("NodeAddr=")),
                    node)  # fmt: skip
        try:
            found.append(socket.gethostbyname(addr))
        except OSError:
            continue  # a name this machine cannot resolve: no route to learn from it
    return found


def source_address(destination: str) -> str | None:
    """The address this machine would send from toward ``destination`` (no packet sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((destination, 9))
            return str(s.getsockname()[0])
        except OSError:
            return None


def controller_address(nodes: list[str], *, interface: str | None = None) -> tuple[str, str]:
    """``(address, why)``: where a controller for engines on ``nodes`` should listen."""
    mine = host_addresses()
    if interface:
        if interface not in mine:
            have = ", ".join(f"{n} ({a})" for n, a in mine.items()) or "none"
            raise InvalidValueError(
                f"controller_interface {interface!r} has no IPv4 address on this machine; "
                f"its interfaces: {have}"
            )
        return mine[interface], f"interface {interface}"
    routes = Counter(s for a in node_addresses(nodes) if (s := source_address(a)))
    routes.pop("127.0.0.1", None)
    if routes:
        address, _ = routes.most_common(1)[0]
        return address, "the route to the nodes " + ",".join(nodes[:4]) + (
            "…" if len(nodes) > 4 else "")  # fmt: skip
    fast = [(n, a) for n, a in sorted(mine.items()) if n.startswith(_FAST)]
    if fast:
        return fast[0][1], f"high-speed interface {fast[0][0]}"
    try:
        return socket.gethostbyname(socket.gethostname()), "this host's name"
    except OSError:
        return "127.0.0.1", "no other address found"


def try_instead(listened: str) -> str:
    """``controller_ip='10.77.0.1' (wbbr0) or ...``: this machine's other addresses, for an
    error saying what to try."""
    others = [(n, a) for n, a in host_addresses().items() if a != listened]
    if not others:
        return "(this machine has no other address)"
    return " or ".join(f"controller_ip={a!r} (--controller-ip {a}, {n})" for n, a in others)
