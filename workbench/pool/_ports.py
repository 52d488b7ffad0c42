"""The controller's ports: free ones from outside the range the kernel hands out for port 0.

ipyparallel's controller picks its ports by binding port 0 and closing the socket, writes
them to its connection files, and binds them later, in the processes it forks (the
heartbeat monitor, the schedulers). In between, any process that binds port 0 can be
given one of them. Inside a Slurm allocation ``mpiexec`` starts the engines through
``srun``, whose listening sockets bind port 0 at that very moment: in a test run one took
a pool's heartbeat port, its engines registered, sent their heartbeats to ``srun``
("Insane message length" in the pool's log), missed every one and shut down two minutes
later.

The kernel never hands out a port outside ``/proc/sys/net/ipv4/ip_local_port_range`` for
port 0, so the controller gets ports from below (or above) that range, each seen free by a
test bind as it is chosen (:func:`controller_ports`), passed as ``--IPController.ports``
(:func:`controller_args`). ipyparallel draws from that list first and falls back to its
own choice only if the list runs out.
"""

from __future__ import annotations

import random
import socket

__all__ = ["CONTROLLER_PORTS", "controller_args", "controller_ports", "ephemeral_range"]

#: How many ports the controller is given (it binds about 20: registration, heartbeat,
#: schedulers and their monitor, for engines and clients).
CONTROLLER_PORTS = 40
_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"
_DEFAULT_EPHEMERAL = (32768, 60999)  # Linux's default (and where the file cannot be read)
_LOWEST = 10000  # below: ports that services are often configured on
_TRIES = 50


def ephemeral_range(path: str = _RANGE_FILE) -> tuple[int, int]:
    """The ports the kernel hands out for port 0 (``lo``, ``hi``, inclusive)."""
    try:
        with open(path) as f:
            lo, hi = (int(v) for v in f.read().split()[:2])
    except (OSError, ValueError):
        return _DEFAULT_EPHEMERAL
    return lo, hi


def _free(port: int) -> bool:
    """Whether ``port`` can be bound on every address of this machine now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("", port))
        except OSError:
            return False
    return True


def controller_ports(
    n: int = CONTROLLER_PORTS, ephemeral: tuple[int, int] | None = None
) -> list[int]:
    """Up to ``n`` ports, free now, outside ``ephemeral`` (default: this machine's range):
    one consecutive run where one is found (readable in logs and firewall rules), else the
    free ones met; empty when there is no room outside the range (ipyparallel's own choice
    then, as before)."""
    lo, hi = ephemeral or ephemeral_range()
    spans = [(a, b) for a, b in ((_LOWEST, lo - 1), (hi + 1, 65535)) if b - a + 1 >= n]
    if not spans:
        return []
    rng = random.Random()  # (fresh entropy: two pools starting at once pick apart)
    met: list[int] = []
    for _ in range(_TRIES):
        a, b = rng.choice(spans)
        start = rng.randint(a, b - n + 1)
        run = [p for p in range(start, start + n) if _free(p)]
        if len(run) == n:
            return run
        met = run if len(run) > len(met) else met
    return met


def controller_args(n: int = CONTROLLER_PORTS) -> list[str]:
    """The controller's command-line arguments that give it :func:`controller_ports`."""
    ports = controller_ports(n)
    if not ports:
        return []
    consecutive = ports == list(range(ports[0], ports[0] + len(ports)))
    listed = f"{ports[0]}-{ports[-1]}" if consecutive else ",".join(map(str, ports))
    return [f"--IPController.ports={listed}"]
