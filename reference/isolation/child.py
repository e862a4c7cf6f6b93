"""The child's side: ``serve`` loads the user's functions, then answers calls
until the pipe closes (or the checker goes away)."""

from __future__ import annotations

import os
import pickle
import sys
import threading
import time
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from pathlib import Path

from manual_bp_reference.isolation import confinement
from manual_bp_reference.isolation.calls import Runner, captured, describe_failure
from manual_bp_reference.isolation.records import PROTOCOL, SOURCE_DIGEST
from manual_bp_reference.isolation.sending import put_back_places


def serve(fd: int, mirror: int) -> None:
    """The child: load the user's functions, then answer calls until the pipe closes."""
    connection = Connection(fd)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    setup = pickle.loads(connection.recv_bytes())[1]
    if setup.get("digest") != SOURCE_DIGEST:  # an upgrade since the checker started
        problem = (
            "the manual-bp installed now is not the one this process imported (it was "
            "upgraded or edited since): restart the process (a notebook: its kernel)"
        )
        skew = ("isolation", "unsendable", problem, "")
        connection.send_bytes(pickle.dumps(("load failed", skew, ("", 0, 0)), protocol=PROTOCOL))
        return
    sys.path[:] = setup["sys_path"]
    os.environ.clear()  # the checker's environment now (a spare child started earlier)
    os.environ.update(setup["environment"])
    os.chdir(setup["cwd"])
    if setup["confine"]:  # before the user's file runs: its top-level code is theirs too
        confinement.confine(setup["cwd"], confinement.readable_places(setup["cwd"]))
    functions: dict[str, Callable[..., object]] = {}
    with captured(mirror=mirror) as capture:
        failure = load_into(functions, setup["functions"])
    output = capture.taken()
    if failure is not None:
        connection.send_bytes(pickle.dumps(("load failed", failure, output), protocol=PROTOCOL))
        return
    if setup["memory_limit"]:
        _limit_memory(setup["memory_limit"])
    connection.send_bytes(pickle.dumps(("loaded", None, output), protocol=PROTOCOL))
    runner = Runner(functions, mirror=mirror)
    while True:
        try:
            message = connection.recv_bytes()
        except (EOFError, OSError):
            return
        kind, *request = pickle.loads(message)
        if kind == "binds":
            answer = bind_error(functions[request[0]], request[1])
            connection.send_bytes(pickle.dumps(("bound", answer, ("", 0, 0)), protocol=PROTOCOL))
            continue
        call_id, name, args, arg_names = request
        try:
            reply = runner.run(call_id, name, pickle.loads(args), arg_names)
        except MemoryError:  # copying the arguments or the result ran out
            reply = ("raised", ("MemoryError: while copying arguments or the result", ""),
                     ("", 0, 0), (), 0.0)  # fmt: skip
        except Exception as error:  # the checker's side failed: said as such, not as yours
            reply = ("raised", (f"the checker failed to run the call: {error!r}", ""),
                     ("", 0, 0), (), 0.0)  # fmt: skip
        connection.send_bytes(pickle.dumps(reply, protocol=PROTOCOL))


def load_into(
    functions: dict, sources: Mapping[str, tuple[str, object]]
) -> tuple[str, str, str, str] | None:
    """Load every function: ``("spec", "file.py:NAME")``, ``("pickled", bytes)``
    or ``("object", f)``; ``(name, kind, problem, traceback)`` for the first that
    fails (``UserCodeLoadError``)."""
    from manual_bp_reference.user_functions import load_function

    for name, (how, source) in sources.items():
        try:
            if how == "spec":
                functions[name] = load_function(str(source), argument=name)
                where = str(source).rpartition(":")[0]
                if where.endswith(".py"):  # its own folder stays importable at call time
                    sys.path.insert(0, str(Path(where).resolve().parent))
            elif how == "pickled":
                sent: tuple[bytes, dict, dict] = source  # type: ignore[assignment]  # _source's
                functions[name] = pickle.loads(sent[0])
                put_back_places(functions[name], sent[1], sent[2])
            else:
                functions[name] = source
        except BaseException as error:
            if how == "spec" and isinstance(error, ValueError) and str(error).startswith(name):
                return (name, "argument", str(error).split(": ", 1)[-1], "")
            exception, user_traceback = describe_failure(error)
            if how == "pickled":
                return (
                    name, "unsendable",
                    f"cannot be loaded in the child process that runs it ({exception}); pass "
                    "isolate=False to run it in this process, without the time and memory limits",
                    user_traceback,
                )  # fmt: skip
            return (name, "raised", f"importing {source} raised {exception}", user_traceback)
    return None


def bind_error(function: Callable[..., object], count: int) -> str | None:
    """``None`` if ``function`` takes ``count`` positional arguments (or has no
    signature to read), else its signature."""
    import inspect

    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin: nothing to read
        return None
    try:
        signature.bind(*range(count))
    except TypeError:
        return str(signature)
    return None


def _limit_memory(limit: int) -> None:
    import resource

    pages = int(Path("/proc/self/statm").read_text().split()[0])
    now = pages * os.sysconf("SC_PAGE_SIZE")
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = now + limit
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _exit_with_parent(parent: int) -> None:
    """End the child when the checker is gone (even mid-way through a user's loop)."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)
