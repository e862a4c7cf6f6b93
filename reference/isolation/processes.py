"""The child processes: started with a pipe and files for what they write,
killed with whatever they started; one spare kept ready for the next check."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import weakref
from multiprocessing.connection import Connection
from typing import Any

from manual_bp_reference.isolation.records import PRODUCT_ROOT


class Process:
    """A started child, idle until it gets its functions: Python and NumPy
    imported, a pipe to it, its fds 1 and 2 in a file the parent reads."""

    def __init__(self) -> None:
        parent_end, child_end = socket.socketpair()
        # fds 1 and 2 of the child (C-level writes, os.write) go to a file we read
        # after each call; appended, so truncating it between calls is safe.
        self.native = appended_file()
        # The first characters a call prints, as they come: read when it hangs or dies.
        self.mirror = appended_file()
        env = environment_now()
        fds = (child_end.fileno(), self.mirror.fileno())
        self.process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from manual_bp_reference.isolation.child "
             "import serve; serve(*map(int, sys.argv[1:]))", *map(str, fds)],
            pass_fds=fds, stdin=subprocess.DEVNULL, stdout=self.native,
            stderr=self.native, start_new_session=True, env=env,
        )  # fmt: skip
        child_end.close()
        self.connection = Connection(parent_end.detach())
        self.environment = env
        LIVE.add(self)

    def alive(self) -> bool:
        return self.process.poll() is None


def appended_file() -> Any:
    """A temporary file whose every write goes to its end (``O_APPEND`` on the
    open file itself, which the child shares), so truncating it between calls
    never leaves a hole of NUL bytes before the child's next write."""
    import fcntl

    file = tempfile.TemporaryFile()
    flags = fcntl.fcntl(file.fileno(), fcntl.F_GETFL)
    fcntl.fcntl(file.fileno(), fcntl.F_SETFL, flags | os.O_APPEND)
    return file


# Every child process started and not yet stopped (spares and sandboxes').
LIVE: weakref.WeakSet[Process] = weakref.WeakSet()

# Idle children kept ready, so that the next check need not wait for Python
# and NumPy to start (about 0.15 s): started when a check ends.  Two, oldest
# first: checks that follow each other (a grader's, a test suite's) take one
# that started a check ago, not the one the last check has just started.
SPARES = 2
SPARE: list[Process] = []
SPARE_LOCK = threading.Lock()


def take_process() -> Process:
    """The spare child if it is alive and was started in today's environment,
    else a new one."""
    with SPARE_LOCK:
        spare = SPARE.pop(0) if SPARE else None
    if (
        spare is not None
        and spare.alive()
        and _startup(spare.environment) == _startup(environment_now())
    ):
        return spare
    if spare is not None:
        stop(spare)
    return Process()


# What a child reads only when it starts (Python's path and flags, the BLAS and
# thread settings NumPy reads at import): a spare started under other values
# is not used.  The rest of the environment is sent with the setup.
_STARTUP_PREFIXES = ("PYTHON", "OPENBLAS", "OMP_", "MKL_", "BLIS_", "VECLIB", "LD_", "JAX_")


def _startup(environment: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in environment.items() if k.startswith(_STARTUP_PREFIXES)}


def keep_a_spare(*, spares: int = SPARES) -> None:
    """Start spare children up to ``spares``: ``SPARES`` when a check ends, one
    before a check begins (``manual-bp check`` starts it before it imports
    jax, so that the child's Python and NumPy start while jax does)."""
    with SPARE_LOCK:
        while len(SPARE) < spares:
            SPARE.append(Process())


def start_ahead() -> None:
    """One spare child, started now (``keep_a_spare``)."""
    keep_a_spare(spares=1)


def environment_now() -> dict[str, str]:
    """The child's environment: ours, this package importable, and jax (if the
    user's code imports it) in 64-bit mode, as in the checker's process."""
    env = dict(os.environ)
    home = str(PRODUCT_ROOT.parent)  # manual_bp_reference: beside it, or its editable finder
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [home, env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("JAX_ENABLE_X64", "1")
    return env


def stop(process: Process) -> None:
    """Kill the child and whatever it started (its process group, and the
    confined processes that left it: ``adopt_orphans``), close its files."""
    with contextlib.suppress(OSError):
        os.killpg(process.process.pid, signal.SIGKILL)  # the child leads its own group
    with contextlib.suppress(OSError):
        process.process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.process.wait(timeout=5)
    for resource in (process.connection, process.native, process.mirror):
        with contextlib.suppress(OSError):
            resource.close()
    LIVE.discard(process)
    if ADOPTING:
        kill_adopted()


# Set once a confined child starts (Linux): this process is the subreaper of
# its children's descendants, so a process the user's code detached (a double
# fork, a new session) comes back to it as a child when its parent ends.
ADOPTING: list[bool] = []
_PR_SET_CHILD_SUBREAPER = 36


def adopt_orphans() -> None:
    """Make this process the subreaper of what its children start (Linux; once)."""
    if ADOPTING or not sys.platform.startswith("linux"):
        return
    import ctypes

    if ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0:
        ADOPTING.append(True)


def kill_adopted() -> None:
    """Kill and reap the confined processes this process adopted: its children
    with ``no_new_privs`` set (what confinement sets, which no child of ours
    has otherwise) that are no child process of a sandbox."""
    me, ours = os.getpid(), {p.process.pid for p in LIVE}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in ours:
            continue
        try:
            with open(f"/proc/{entry.name}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except OSError:
            continue
        if int(fields.get("PPid", "0")) == me and fields.get("NoNewPrivs", "0").strip() == "1":
            with contextlib.suppress(OSError):
                os.kill(int(entry.name), signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.waitpid(int(entry.name), 0)


@atexit.register
def _stop_children() -> None:
    """At exit: the spares and every child a sandbox left running (one never
    closed), killed with their files closed, not left to find the parent gone."""
    with SPARE_LOCK:
        children = [*SPARE, *LIVE]  # held here: a spare dropped unstopped would warn
        SPARE.clear()
    for process in dict.fromkeys(children):
        stop(process)
