"""``Isolation``: how a check runs a user's code (in a child process or not,
its time and memory limits)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import numpy as np

from manual_bp_reference.isolation import confinement

# A correct call on a small network takes well under a millisecond; ten
# seconds leaves room for a slow machine, a large layer or a first import.
DEFAULT_TIMEOUT = 10.0


def can_isolate() -> bool:
    """Child processes with a pipe of file descriptors: every POSIX system."""
    return os.name == "posix"


@dataclass(frozen=True)
class Isolation:
    """How a check runs the user's code.

    ``isolate``: in a child process (default where possible, see
    ``can_isolate``); ``timeout``: seconds per call (``None``: no limit);
    ``load_timeout``: seconds to load the user's functions, whose file's
    top-level code runs then (default: ``timeout``, but at least
    ``DEFAULT_TIMEOUT``: a slow import is no slow call);
    ``memory_limit``: bytes the child may add to what it holds once the
    user's functions are loaded (``None``: no limit; Linux);
    ``folder``: the child's working directory (``None``: the checker's);
    ``confine``: the child may write only in ``folder`` and read only it and
    Python's own files (Linux Landlock, ``confinement``): for running other
    people's code, such as a class's submissions.
    """

    isolate: bool = field(default_factory=can_isolate)
    timeout: float | None = DEFAULT_TIMEOUT
    memory_limit: int | None = None
    load_timeout: float | None = None
    folder: str | None = None
    confine: bool = False

    def __post_init__(self) -> None:
        if self.folder is not None:
            if not isinstance(self.folder, str | os.PathLike):
                raise TypeError(f"folder: expected a path or None, got {self.folder!r}")
            if not os.path.isdir(self.folder):
                raise ValueError(f"folder: expected an existing folder, got {str(self.folder)!r}")
            object.__setattr__(self, "folder", os.path.realpath(self.folder))
        if not isinstance(self.confine, bool):
            raise TypeError(f"confine: expected True or False, got {self.confine!r}")
        if self.confine and not self.isolate:
            raise ValueError("confine: confinement needs a child process (isolate=True)")
        if self.confine and confinement.abi_version() == 0:
            raise ValueError(
                "confine: needs Linux Landlock (kernel 5.13 or later, enabled), which this "
                "system lacks"
            )
        if not isinstance(self.isolate, bool):
            raise TypeError(f"isolate: expected True or False, got {self.isolate!r}")
        if self.isolate and not can_isolate():
            raise ValueError(f"isolate: child processes need a POSIX system, not {os.name!r}")
        if self.timeout is not None:
            if isinstance(self.timeout, bool) or not isinstance(self.timeout, int | float):
                raise TypeError(f"timeout: expected seconds or None, got {self.timeout!r}")
            if not (self.timeout > 0 and np.isfinite(self.timeout)):
                raise ValueError(f"timeout: expected finite seconds > 0, got {self.timeout!r}")
        if self.memory_limit is not None:
            if isinstance(self.memory_limit, bool) or not isinstance(self.memory_limit, int):
                raise TypeError(
                    f"memory_limit: expected a number of bytes (an int) or None, "
                    f"got {self.memory_limit!r}"
                )
            if self.memory_limit <= 0:
                raise ValueError(f"memory_limit: expected bytes > 0, got {self.memory_limit!r}")
            if not sys.platform.startswith("linux"):
                raise ValueError(f"memory_limit: needs Linux (RLIMIT_AS), not {sys.platform!r}")
        if not self.isolate and (self.memory_limit is not None or self.timeout != DEFAULT_TIMEOUT):
            given = "memory_limit" if self.memory_limit is not None else "timeout"
            if self.timeout is not None or self.memory_limit is not None:
                raise ValueError(
                    f"{given}: limits need a child process; with isolate=False the code runs "
                    "in this process, where nothing can stop it (drop the limit or isolate)"
                )

    @property
    def loading_limit(self) -> float | None:
        """The time limit of loading the user's functions."""
        if self.load_timeout is not None or self.timeout is None:
            return self.load_timeout
        return max(self.timeout, DEFAULT_TIMEOUT)

    def describe(self) -> str:
        """One line for a report: where the code ran and its limits."""
        if not self.isolate:
            return "your code ran in this process (isolate=False): no time or memory limit"
        limit = "no time limit" if self.timeout is None else f"{self.timeout:g} s per call"
        memory = "" if self.memory_limit is None else f", {self.memory_limit / 2**20:.0f} MiB"
        return f"your code ran in a child process ({limit}{memory})"
