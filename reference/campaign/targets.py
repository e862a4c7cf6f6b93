"""A user's target, in a child process that each process (a Dask worker's thread) keeps."""

from __future__ import annotations

import os
import threading

from manual_bp_reference.campaign.config import DEFAULT_TARGET, Config
from manual_bp_reference.check_run import open_sandbox
from manual_bp_reference.isolation import (
    Isolation,
    Sandbox,
    UserCodeLoadError,
    UserCodeStopped,
    UserFunction,
)

# A user's target runs in a child process (manual_bp_reference.isolation), one per
# thread (a Dask worker may run chunks in several), target, state of its file
# (an edited file is loaded again) and timeout.
_SANDBOXES: dict[tuple, Sandbox] = {}
_SANDBOXES_LOCK = threading.Lock()


def target_function(config: Config) -> UserFunction | None:
    """``None`` for the project's own backprop; else the campaign's target as a
    ``manual_bp_reference.isolation.UserFunction``, run in a child process that this
    process keeps: a call that hangs past ``config.timeout``, exits or crashes
    fails its example, never the worker.  A target that cannot be loaded is a
    ``ValueError`` naming ``target``.

    ``config.target`` is ``manual_bp``, ``module:function`` or
    ``path/to/file.py:function`` (``manual_bp_reference.user_functions``).  Without a
    ``network`` a user's function is called as ``backprop(params, X, Y,
    activations, loss)`` and returns ``grads`` holding ``W1..WL`` and
    ``B1..BL`` and any of ``Zl``, ``Al`` (compared when present), in our
    conventions; it computes in the dtype of ``params``.  With a ``network``
    it is called as ``check_gradients`` calls it, ``backprop(params, X, Y)``
    in the given ``conventions``.
    """
    if config.target == DEFAULT_TARGET:
        return None
    thread = threading.get_ident()
    per_sample = config.conventions is not None and config.conventions.per_sample
    key = (config.target, file_state(config.target), config.timeout, per_sample, thread)
    with _SANDBOXES_LOCK:
        sandbox = _SANDBOXES.get(key)
        stale = [k for k in _SANDBOXES if k[0] == config.target and k[4] == thread and k != key]
        for old in stale:  # this thread's child of an older file: no call of it is running
            _SANDBOXES.pop(old).close()
    if sandbox is None:
        try:
            source = (
                config.target
                if config.conventions is None
                else (config.conventions.runnable(config.target))
            )
            sandbox = open_sandbox({"target": source}, Isolation(timeout=config.timeout))
        except UserCodeLoadError as error:  # one line: where the user's code failed
            where = [line.strip() for line in error.traceback.splitlines() if "File " in line]
            at = f" ({where[-1]})" if where else ""
            raise ValueError(f"target: {error.problem}{at}") from None
        except UserCodeStopped as stopped:
            raise ValueError(
                f"target: loading {config.target} {stopped.verdict} ({stopped.detail})"
            ) from None
        with _SANDBOXES_LOCK:
            _SANDBOXES[key] = sandbox
    names = ("params", "X", "Y") if config.network else ("params", "X", "Y", "activations", "loss")
    return sandbox.function("target", names)


def file_state(target: str) -> tuple[int, int] | None:
    """A file target's modification time and size (``None`` for a module's)."""
    where = target.rpartition(":")[0]
    if not where.endswith(".py"):
        return None
    try:
        stat = os.stat(where)
    except OSError:
        return None  # loading names the missing file
    return stat.st_mtime_ns, stat.st_size
