"""Run a user's code where it cannot take the checker down with it.

Every check of someone else's code (``check_gradients``, ``check_layer``,
``check_optimizer``, a campaign's ``target``) calls it through a ``Sandbox``:

* **a child process** (``isolate=True``, the default on POSIX systems): a
  fresh Python that imports NumPy and the user's functions, never jax.  The
  functions travel by name (``"my_net.py:backprop"``, loaded there, so even
  the file's top-level code runs there) or pickled by value with cloudpickle
  (a function of a notebook, a test file or a closure).  ``sys.exit``,
  ``os._exit``, a segfault, a ``MemoryError`` or an endless loop ends the
  *call*, with a verdict, never the checker;
* **a time limit per call** (``timeout`` seconds, default ``DEFAULT_TIMEOUT``):
  past it the child is killed and a new one serves the next call;
* **an optional memory limit** (``memory_limit`` bytes more than the child
  holds once the user's functions are loaded; Linux, ``RLIMIT_AS``);
* **captured output**: what a call prints (``print``, ``sys.stderr``, and
  writes to the file descriptors 1 and 2) is kept, bounded, in its
  ``CallRecord``; nothing reaches the checker's own stdout;
* **copies**: every argument is the user's own copy, and a write into one is
  found by comparing it with a snapshot taken before the call (a note, never
  a verdict);
* **plain data back**: what a call returns comes back as dicts, lists,
  tuples, NumPy arrays and numbers (anything else as an ``Opaque`` that says
  what it was), unpickled by an allow-list, so no user object ever runs code
  in the checker.  The raw value stays in the child: ``UserFunction.keep``
  hands part of it (a layer's cache) to a later call as it was.

``isolate=False`` runs the same calls in this process, with the same copies,
capture and plain data, but no time or memory limit and no protection from
``os._exit``: for a debugger's breakpoints.

>>> def backprop(params, X, Y):
...     print("computing")
...     params["W1"] += 1.0  # written in place: a note, and our arrays are untouched
...     return {"W1": params["W1"] * 0.0}
>>> import numpy as np
>>> W1 = np.ones((2, 2))
>>> with Sandbox({"backprop": backprop}) as sandbox:
...     call = sandbox.function("backprop", ("params", "X", "Y"))
...     grads = call({"W1": W1}, np.ones((2, 3)), np.ones((1, 3)))
...     record = call.last
>>> grads["W1"].tolist(), W1.tolist()
([[0.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]])
>>> record.output.text, record.wrote
('computing\\n', ("params['W1']",))
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import hashlib
import io
import itertools
import os
import pickle
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import types
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

# A correct call on a small network takes well under a millisecond; ten
# seconds leaves room for a slow machine, a large layer or a first import.
DEFAULT_TIMEOUT = 10.0
# How much of a call's output is kept: its first and last characters.
HEAD_CHARS, TAIL_CHARS = 4000, 1000
# Raw return values the child keeps for ``keep`` (the last few calls').
KEPT_CALLS = 8
# A returned structure deeper than this comes back as an ``Opaque``.
MAX_DEPTH = 32
PROTOCOL = 5
# This file as the process imported it: the child checks it runs the same.
SOURCE_DIGEST = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
# Arguments a function may write into by contract: cs231n's batchnorm forward
# stores its running statistics in ``bn_param`` (``param`` here).
MAY_WRITE = frozenset({"param"})


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
    user's functions are loaded (``None``: no limit; Linux).
    """

    isolate: bool = field(default_factory=can_isolate)
    timeout: float | None = DEFAULT_TIMEOUT
    memory_limit: int | None = None
    load_timeout: float | None = None

    def __post_init__(self) -> None:
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


# --- what comes back --------------------------------------------------------------------


@dataclass(frozen=True)
class Opaque:
    """A returned object that is not plain data, by what it was."""

    type_name: str
    text: str

    def __repr__(self) -> str:
        return f"<{self.type_name}: {self.text}>"


def type_name(value: object) -> str:
    """``value``'s type as a user would name it (an ``Opaque``'s original type)."""
    return value.type_name if isinstance(value, Opaque) else type(value).__name__


def plain(value: object, *, depth: int = 0) -> object:
    """``value`` as plain data: dicts, lists, tuples, arrays, numbers, strings, None.

    Mappings become dicts, sequences lists or tuples (a namedtuple a tuple),
    anything with ``__array__`` (a jax or torch array, ``np.matrix``) an
    ``np.ndarray``, an object array of numbers a float array; anything else an
    ``Opaque``.  Runs where the user's code runs.
    """
    if depth > MAX_DEPTH:
        return Opaque(type_name(value), "nested too deeply")
    if value is None or type(value) in (bool, int, float, complex, str, bytes):
        return value
    for base in (bool, int, float, complex, str, bytes):  # an IntEnum, a str subclass
        if isinstance(value, base):
            try:
                return base(value)  # type: ignore[arg-type]  # each base its own kind
            except Exception:
                return Opaque(type_name(value), _safe_repr(value))
    if isinstance(value, np.generic):
        return value if value.dtype.kind in "biufc" else Opaque(type_name(value), repr(value))
    if isinstance(value, Mapping):
        try:
            items = list(value.items())
        except Exception as error:  # a mapping of the user's that cannot be read
            return Opaque(type_name(value), f"its items() raised {type(error).__name__}")
        return {plain(k, depth=depth + 1): plain(v, depth=depth + 1) for k, v in items}
    if isinstance(value, list):
        return [plain(v, depth=depth + 1) for v in value]
    if isinstance(value, tuple):
        return tuple(plain(v, depth=depth + 1) for v in value)
    if isinstance(value, np.ndarray) or hasattr(value, "__array__"):
        try:
            array = np.array(value)  # a base-class copy
        except Exception as error:
            return Opaque(type_name(value), f"not an array ({error})")
        if array.dtype.kind == "O":
            try:
                return array.astype(np.float64)
            except (TypeError, ValueError):
                return Opaque(type_name(value), "an array of objects")
        if array.dtype.kind not in "biufc":
            return Opaque(type_name(value), f"an array of dtype {array.dtype}")
        return np.asarray(array)
    text = _safe_repr(value)
    return Opaque(type_name(value), text)


def _safe_repr(value: object) -> str:
    try:
        text = repr(value)
    except Exception as error:  # a repr that raises says so
        text = f"repr raised {type(error).__name__}"
    return text if len(text) <= 200 else text[:200] + "..."


# What the checker unpickles: plain data only (no user class, no code).
_ALLOWED = {
    ("builtins", "complex"), ("builtins", "slice"),
    ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer"),
    (__name__, "Opaque"),
}  # fmt: skip


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not plain data")


def loads_plain(data: bytes) -> Any:
    """Unpickle what a child sent: plain data only."""
    return _PlainUnpickler(io.BytesIO(data)).load()


# --- one call's record ------------------------------------------------------------------


@dataclass(frozen=True)
class Output:
    """What a call printed (stdout and stderr together): its first ``HEAD_CHARS``
    and last ``TAIL_CHARS`` characters, and how much there was."""

    text: str = ""
    chars: int = 0
    lines: int = 0
    # The distinct warnings the call issued (NumPy's overflow, say): not printed lines.
    warnings: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.chars > 0

    def shown(self, *, max_lines: int = 12) -> str:
        """At most ``max_lines`` lines, the rest counted, indented for a report."""
        lines = self.text.splitlines()
        if len(lines) > max_lines:
            keep = max_lines - 3
            lines = [*lines[:keep], f"... ({self.lines - keep - 2:,} more lines) ...", *lines[-2:]]
        elif self.chars > len(self.text):
            lines.append(f"... ({self.chars - len(self.text):,} more characters)")
        return "\n".join(f"    | {line[:200]}" for line in lines)

    def __add__(self, other: Output) -> Output:
        if not other and not other.warnings:
            return self
        if not self and not self.warnings:
            return other
        text = self.text + other.text
        if len(text) > HEAD_CHARS + TAIL_CHARS:
            text = text[:HEAD_CHARS] + text[-TAIL_CHARS:]
        warned = tuple(dict.fromkeys(self.warnings + other.warnings))
        return Output(text, self.chars + other.chars, self.lines + other.lines, warned)


NO_OUTPUT = Output()


@dataclass(frozen=True)
class CallRecord:
    """One call of the user's code: what it printed, which arguments it wrote
    into (``"params['W1']"``), how long it took; ``ended`` says how a call that
    did not return ended (``raised``, ``timed out``, ``ended the process``)."""

    call: str
    output: Output = NO_OUTPUT
    wrote: tuple[str, ...] = ()
    seconds: float = 0.0
    ended: str = ""
    exception: str = ""  # "ValueError: shapes (3,2) and (3,5) not aligned"
    traceback: str = ""  # the user's frames only


class UserCodeError(Exception):
    """The user's code raised (``SystemExit`` and ``KeyboardInterrupt`` too)."""

    def __init__(self, record: CallRecord) -> None:
        super().__init__(f"{record.call} raised {record.exception}")
        self.record = record


class UserCodeStopped(BaseException):
    """The user's code timed out or ended its process.

    A ``BaseException`` that is no ``Exception``, so that Hypothesis stops at
    once instead of shrinking by calling again code that hangs or dies.
    ``.verdict``: ``"timed out"`` or ``"ended the process"``; ``.detail`` says
    how (``"after 10 s"``, ``"exit status 0"``, ``"signal SIGSEGV"``).
    """

    # What the caller was doing (a check sets the case it was running).
    context: object = None

    def __init__(self, record: CallRecord, verdict: str, detail: str) -> None:
        super().__init__(f"{record.call}: {verdict} ({detail})")
        self.record, self.verdict, self.detail = record, verdict, detail


@dataclass(frozen=True)
class Kept:
    """Part of an earlier call's raw return value, passed to a later call as it
    was (``UserFunction.keep``): a layer's cache, which may be any object."""

    call_id: int
    path: tuple[Any, ...]


class UserFunction:
    """A user's function as the checker calls it: ``f(*args)`` returns plain
    data or raises ``UserCodeError`` / ``UserCodeStopped``; ``.last`` is the
    last call's ``CallRecord``."""

    def __init__(self, sandbox: Sandbox, name: str, arg_names: Sequence[str]) -> None:
        self.sandbox, self.name, self.arg_names = sandbox, name, tuple(arg_names)
        self.call_text = f"{name}({', '.join(arg_names)})"
        self.last: CallRecord | None = None
        self._last_id = -1

    def __call__(self, *args: object) -> Any:
        if len(args) != len(self.arg_names):
            raise TypeError(f"{self.call_text}: {len(args)} arguments given")
        self._last_id, value, record = self.sandbox._call(self, args)
        self.last = record
        return value

    def keep(self, *path: Any) -> Kept:
        """``last_return[path[0]][path[1]]...`` of the last call, for a later call."""
        return Kept(self._last_id, path)


# --- the sandbox ------------------------------------------------------------------------


Source = Callable[..., object] | str  # a function, or "file.py:NAME" / "module:NAME"


class Sandbox:
    """The user's functions, run under an ``Isolation`` (a context manager).

    ``functions`` maps names to callables or ``"FILE.py:NAME"`` specs; the
    child (or this process) loads them on first use.  ``history`` keeps every
    finished call's record; ``notes()`` sums them up for a report.
    """

    def __init__(self, functions: Mapping[str, Source], isolation: Isolation | None = None):
        self.functions = dict(functions)
        self.isolation = isolation or Isolation()
        self.history: list[CallRecord] = []
        self.load_output = Output()
        self._child: _Child | None = None
        self._local: _Runner | None = None  # isolate=False
        self._ids = itertools.count()
        # One call at a time on the one pipe (threads of a Dask worker may share it).
        self._lock = threading.RLock()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._child is not None:
                self._child.kill()
                self._child = None
                _keep_a_spare()

    def function(self, name: str, arg_names: Sequence[str]) -> UserFunction:
        if name not in self.functions:
            raise KeyError(name)
        return UserFunction(self, name, arg_names)

    def start(self) -> None:
        """Load the user's functions (in a new child when isolated), if not loaded.

        Raises ``UserCodeLoadError`` when they cannot be loaded, and
        ``UserCodeStopped`` when loading times out or ends the child.
        """
        with self._lock:
            self._start()

    def _start(self) -> None:
        if not self.isolation.isolate:
            if self._local is None:
                functions: dict[str, Callable[..., object]] = {}
                sources = {
                    name: ("spec", f) if isinstance(f, str) else ("object", f)
                    for name, f in self.functions.items()
                }
                with _captured() as capture:
                    failure = _load_into(functions, sources)
                self.load_output = _output_from(capture.taken())
                if failure is not None:
                    raise UserCodeLoadError(*failure, self.load_output)
                self._local = _Runner(functions, interruptible=True)
            return
        if self._child is not None:
            return
        try:
            self._child = _Child(self.functions, self.isolation)
        except _EndedError as ended:
            record = CallRecord(
                f"loading {', '.join(map(str, self.functions.values()))}", ended.output,
                seconds=ended.seconds, ended=ended.verdict,
            )  # fmt: skip
            raise UserCodeStopped(record, ended.verdict, ended.detail) from None
        self.load_output = self._child.load_output

    def binds(self, name: str, count: int) -> str | None:
        """``None`` if function ``name`` takes ``count`` positional arguments, else
        its signature (``"(params, X)"``): a form refused before any call."""
        with self._lock:
            return self._binds(name, count)

    def _binds(self, name: str, count: int) -> str | None:
        self.start()
        if self._local is not None:
            return _binds(self._local.functions[name], count)
        assert self._child is not None  # started above
        return self._child.binds(name, count)

    def _call(self, function: UserFunction, args: Sequence[object]) -> tuple[int, Any, CallRecord]:
        with self._lock:
            return self._call_locked(function, args)

    def _call_locked(
        self, function: UserFunction, args: Sequence[object]
    ) -> tuple[int, Any, CallRecord]:
        call_id = next(self._ids)
        call = function.call_text
        self.start()
        try:
            if self._local is not None:
                reply = self._local.run(call_id, function.name, tuple(args), function.arg_names)
            else:
                assert self._child is not None  # started above
                reply = self._child.call(call_id, function.name, args, function.arg_names)
        except _EndedError as ended:
            self._child = None  # the next call starts a new one
            record = CallRecord(call, ended.output, seconds=ended.seconds, ended=ended.verdict)
            self.history.append(record)
            raise UserCodeStopped(record, ended.verdict, ended.detail) from None
        kind, payload, output, wrote, seconds = reply
        output = output if isinstance(output, Output) else _output_from(output)
        if kind == "returned":
            record = CallRecord(call, output, wrote, seconds)
            self.history.append(record)
            value = payload if self._local is None else loads_plain(payload)
            return call_id, value, record
        exception, user_traceback = payload
        record = CallRecord(call, output, wrote, seconds, "raised", exception, user_traceback)
        self.history.append(record)
        raise UserCodeError(record)

    def notes(self) -> list[str]:
        """What the calls did besides returning: output and writes into arguments."""
        notes = []
        printed = [r for r in self.history if r.output]
        if self.load_output:
            notes.append(
                f"loading your code printed {self.load_output.lines:,} lines "
                f"({self.load_output.chars:,} characters)"
            )
        if printed:
            lines = sum(r.output.lines for r in printed)
            chars = sum(r.output.chars for r in printed)
            notes.append(
                f"your code printed {lines:,} lines ({chars:,} characters) in {len(printed)} of "
                f"{len(self.history)} calls; captured, not shown with the verdict "
                "(a failure shows its call's output)"
            )
        warned = list(dict.fromkeys(w for r in self.history for w in r.output.warnings))
        if warned:
            shown = "; ".join(warned[:3]) + ("; ..." if len(warned) > 3 else "")
            notes.append(f"your code issued {len(warned)} distinct warnings: {shown}")
        wrote: dict[str, set[str]] = {}
        for record in self.history:
            if record.wrote:
                wrote.setdefault(record.call, set()).update(record.wrote)
        for call, paths in wrote.items():
            notes.append(
                f"{call} wrote into its arguments in place ({', '.join(sorted(paths))}): "
                "each call gets fresh copies, so this changed no verdict; in a training loop "
                "it changes the caller's arrays"
            )
        return notes


class _EndedError(Exception):
    def __init__(self, verdict: str, detail: str, output: Output, seconds: float) -> None:
        super().__init__(f"{verdict} ({detail})")
        self.verdict, self.detail, self.output, self.seconds = verdict, detail, output, seconds


class _Process:
    """A started child, idle until it gets its functions: Python and NumPy
    imported, a pipe to it, its fds 1 and 2 in a file the parent reads."""

    def __init__(self) -> None:
        parent_end, child_end = socket.socketpair()
        # fds 1 and 2 of the child (C-level writes, os.write) go to a file we read
        # after each call; appended, so truncating it between calls is safe.
        self.native = _appended_file()
        # The first characters a call prints, as they come: read when it hangs or dies.
        self.mirror = _appended_file()
        env = _environment_now()
        fds = (child_end.fileno(), self.mirror.fileno())
        self.process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from reference.isolation import serve; "
             "serve(*map(int, sys.argv[1:]))", *map(str, fds)],
            pass_fds=fds, stdin=subprocess.DEVNULL, stdout=self.native,
            stderr=self.native, start_new_session=True, env=env,
        )  # fmt: skip
        child_end.close()
        self.connection = Connection(parent_end.detach())
        self.environment = env

    def alive(self) -> bool:
        return self.process.poll() is None


def _appended_file() -> Any:
    """A temporary file whose every write goes to its end (``O_APPEND`` on the
    open file itself, which the child shares), so truncating it between calls
    never leaves a hole of NUL bytes before the child's next write."""
    import fcntl

    file = tempfile.TemporaryFile()
    flags = fcntl.fcntl(file.fileno(), fcntl.F_GETFL)
    fcntl.fcntl(file.fileno(), fcntl.F_SETFL, flags | os.O_APPEND)
    return file


# One idle child kept ready, so that the next check need not wait for Python
# and NumPy to start (about 0.2 s): started when a check ends.
_SPARE: list[_Process] = []
_SPARE_LOCK = threading.Lock()


def _take_process() -> _Process:
    """The spare child if it is alive and was started in today's environment,
    else a new one."""
    with _SPARE_LOCK:
        spare = _SPARE.pop() if _SPARE else None
    if spare is not None and spare.alive() and spare.environment == _environment_now():
        return spare
    if spare is not None:
        _stop(spare)
    return _Process()


def _keep_a_spare() -> None:
    """Start the spare child if there is none (a check has just ended)."""
    with _SPARE_LOCK:
        if not _SPARE:
            _SPARE.append(_Process())


def _environment_now() -> dict[str, str]:
    """The child's environment: ours, this package importable, and jax (if the
    user's code imports it) in 64-bit mode, as in the checker's process."""
    env = dict(os.environ)
    home = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [home, env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("JAX_ENABLE_X64", "1")
    return env


def _stop(process: _Process) -> None:
    """Kill the child and whatever it started (its process group), close its files."""
    with contextlib.suppress(OSError):
        os.killpg(process.process.pid, signal.SIGKILL)  # the child leads its own group
    with contextlib.suppress(OSError):
        process.process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.process.wait(timeout=5)
    for resource in (process.connection, process.native, process.mirror):
        with contextlib.suppress(OSError):
            resource.close()


@atexit.register
def _stop_spare() -> None:
    with _SPARE_LOCK:
        while _SPARE:
            _stop(_SPARE.pop())


class _Child:
    """One child process with the user's functions loaded (the parent's side)."""

    def __init__(self, functions: Mapping[str, Source], isolation: Isolation) -> None:
        import cloudpickle  # type: ignore[import-untyped]  # no stubs

        self.isolation = isolation
        sources = {name: _source(function, cloudpickle) for name, function in functions.items()}
        self.started = started = _take_process()
        self.process, self.connection, self.native = (
            started.process, started.connection, started.native
        )  # fmt: skip
        setup = {
            "sys_path": list(sys.path), "cwd": os.getcwd(), "functions": sources,
            "memory_limit": isolation.memory_limit, "digest": SOURCE_DIGEST,
        }  # fmt: skip
        reply = self._exchange(("setup", setup), isolation.loading_limit)
        kind, payload, output = reply[0], reply[1], reply[2]
        self.load_output = output
        if kind == "load failed":
            self.kill()
            name, how, problem, user_traceback = payload
            raise UserCodeLoadError(name, how, problem, user_traceback, output)

    def call(self, call_id: int, name: str, args: Sequence[object], arg_names: tuple) -> tuple:
        message = ("call", call_id, name, pickle.dumps(tuple(args), protocol=PROTOCOL), arg_names)
        kind, payload, output, wrote, seconds = self._exchange(message, self.isolation.timeout)
        if kind == "returned":
            payload = loads_plain(payload)
        return kind, payload, output, wrote, seconds

    def binds(self, name: str, count: int) -> str | None:
        return self._exchange(("binds", name, count), self.isolation.timeout)[1]

    def _exchange(self, message: tuple, timeout: float | None) -> tuple:
        """Send ``message``; the reply within ``timeout`` seconds, or ``_EndedError``."""
        start = time.perf_counter()
        with contextlib.suppress(OSError, ValueError):
            self.started.mirror.truncate(0)
        try:
            self.connection.send_bytes(pickle.dumps(message, protocol=PROTOCOL))
            if not self.connection.poll(timeout):
                printed = self._printed_before_the_end()
                self.kill()
                raise _EndedError("timed out", f"after {timeout:g} s", printed, timeout or 0)
            reply = loads_plain(self.connection.recv_bytes())
        except (EOFError, OSError, pickle.UnpicklingError):
            seconds = time.perf_counter() - start
            status = self._wait()
            if self.isolation.memory_limit is not None:
                status += (
                    f"; under the memory limit of {self.isolation.memory_limit / 2**20:.0f} MiB "
                    "an allocation may have failed outside NumPy: raise the limit to tell"
                )
            printed = self._printed_before_the_end()
            raise _EndedError("ended the process", status, printed, seconds) from None
        output: Output = _output_from(reply[2]) + self._native_output()
        return (reply[0], reply[1], output, *reply[3:])

    def _wait(self) -> str:
        """How the child ended: its exit status or the signal that killed it."""
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            return "it closed its connection to the checker"
        finally:
            self.connection.close()
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
            hint = {"SIGSEGV": " (a crash in native code)", "SIGKILL": " (out of memory?)",
                    "SIGABRT": " (an abort in native code)"}.get(name, "")  # fmt: skip
            return f"killed by signal {name}{hint}"
        return f"exit status {code} (os._exit, or a native exit())"

    def _printed_before_the_end(self) -> Output:
        """What a call that did not return printed: the first characters its
        ``print`` calls copied to the mirror, and what reached fds 1 and 2."""
        try:
            self.started.mirror.seek(0)
            data = self.started.mirror.read(4 * HEAD_CHARS)
        except (OSError, ValueError):
            data = b""
        text = data.decode("utf-8", "replace")[:HEAD_CHARS]
        mirrored = Output(text, len(text), text.count("\n") + (not text.endswith("\n")))
        return (mirrored if text else NO_OUTPUT) + self._native_output()

    def _native_output(self) -> Output:
        """What the child wrote to its fds 1 and 2 since the last read (then cleared)."""
        try:
            size = self.native.seek(0, os.SEEK_END)
            self.native.seek(0)
            head = self.native.read(HEAD_CHARS)
            tail = b""
            if size > HEAD_CHARS:
                self.native.seek(max(HEAD_CHARS, size - TAIL_CHARS))
                tail = self.native.read(TAIL_CHARS)
            self.native.truncate(0)
        except (OSError, ValueError):
            return NO_OUTPUT
        if not size:
            return NO_OUTPUT
        skipped = size - len(head) - len(tail)
        text = head.decode("utf-8", "replace")
        if tail:
            text += (f"\n... ({skipped:,} bytes) ...\n" if skipped > 0 else "") + tail.decode(
                "utf-8", "replace"
            )
        return Output(text, size, text.count("\n") + (not text.endswith("\n")))

    def kill(self) -> None:
        _stop(self.started)


class UserCodeLoadError(Exception):
    """The user's code could not be loaded where it runs.

    ``kind``: ``"argument"`` (no such file or function: the name is wrong),
    ``"raised"`` (importing the user's file raised; ``traceback`` has it) or
    ``"unsendable"`` (a function the child could not unpickle).
    """

    def __init__(
        self, name: str, kind: str, problem: str, user_traceback: str, output: Output
    ) -> None:
        super().__init__(f"{name}: {problem}")
        self.name, self.kind, self.problem = name, kind, problem
        self.traceback, self.output = user_traceback, output


def _source(function: Source, cloudpickle: Any) -> tuple[str, object]:
    """How a function travels to the child: by name, or pickled by value."""
    if isinstance(function, str):
        return ("spec", function)
    module = sys.modules.get(getattr(function, "__module__", None) or "")
    by_value = module is not None and _is_users(module)
    with _PICKLE_LOCK:
        if by_value:
            cloudpickle.register_pickle_by_value(module)
        try:
            data = cloudpickle.dumps(function, protocol=PROTOCOL)
            return ("pickled", (data, *_code_places(function)))
        except Exception as error:
            raise TypeError(
                f"cannot send {getattr(function, '__name__', function)!r} to the child process "
                f"that runs it ({type(error).__name__}: {error}); pass isolate=False to run "
                "it in this process, without the time and memory limits"
            ) from None
        finally:
            if by_value:
                cloudpickle.unregister_pickle_by_value(module)


_PICKLE_LOCK = threading.Lock()

# cloudpickle names every code object it sends by value "<dynamic-code>"; a
# traceback in the child would then show no file and no line of the user's.
# The file of each code object and the source lines go along, put back there.
_DYNAMIC = "<dynamic-code>"
CodeKey = tuple[str, int]  # (co_name, co_firstlineno)


def _functions_of(root: object) -> Iterator[types.FunctionType]:
    """The Python functions a callable runs: itself (a bound method's function,
    a callable object's class), and the functions and classes its globals and
    closures name, recursively."""
    seen: set[int] = set()
    stack: list[object] = [root]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, types.MethodType):
            stack += [item.__func__, type(item.__self__)]
        elif isinstance(item, types.FunctionType):
            yield item
            code_names = set(_names(item.__code__))
            stack += [v for k, v in item.__globals__.items() if k in code_names]
            stack += [c.cell_contents for c in item.__closure__ or () if _has_contents(c)]
        elif isinstance(item, type) and item.__module__ not in ("builtins",):
            stack += list(vars(item).values())
        elif isinstance(item, staticmethod | classmethod):
            stack.append(item.__func__)
        elif callable(item) and not isinstance(item, type):
            stack.append(type(item))


def _names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)


def _has_contents(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018  (an empty cell raises)
    except ValueError:
        return False
    return True


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def _code_places(function: object) -> tuple[dict[CodeKey, str], dict[str, list[str]]]:
    """Where each code object a function runs was written, and those files' lines."""
    import linecache

    places: dict[CodeKey, str] = {}
    for item in _functions_of(function):
        for code in _codes(item.__code__):
            places[(code.co_name, code.co_firstlineno)] = code.co_filename
    sources = {}
    for filename in set(places.values()):
        lines = linecache.getlines(filename)
        if lines and sum(map(len, lines)) < 2**22:  # not a huge generated file
            sources[filename] = lines
    return places, sources


def _put_back_places(
    function: object, places: Mapping[CodeKey, str], sources: Mapping[str, list[str]]
) -> None:
    """In the child: the files of ``function``'s code objects, and their lines."""
    import linecache

    for filename, lines in sources.items():
        linecache.cache[filename] = (sum(map(len, lines)), None, list(lines), filename)
    for item in _functions_of(function):
        if item.__code__.co_filename == _DYNAMIC:
            item.__code__ = _placed(item.__code__, places)


def _placed(code: types.CodeType, places: Mapping[CodeKey, str]) -> types.CodeType:
    consts = tuple(
        _placed(c, places) if isinstance(c, types.CodeType) else c for c in code.co_consts
    )
    filename = places.get((code.co_name, code.co_firstlineno), code.co_filename)
    return code.replace(co_filename=filename, co_consts=consts)


def _is_users(module: Any) -> bool:
    """A module of the user's (pickled by value, so the child need not import
    it): not ``__main__`` (cloudpickle sends that by value anyway), nor from an
    installed package or the standard library."""
    path = getattr(module, "__file__", None)
    if module.__name__ == "__main__" or path is None:
        return False
    path = str(Path(path).resolve())
    installed = ("site-packages", "dist-packages")
    stdlib = str(Path(os.__file__).resolve().parent)
    home = Path(__file__).resolve().parent.parent
    ours = tuple(str(home / package) for package in ("reference", "manual_bp"))
    return not (any(part in path for part in installed) or path.startswith((stdlib, *ours)))


def _output_from(data: object) -> Output:
    return Output(*data) if isinstance(data, tuple) else Output()


# --- the side that runs the user's code (in the child, or here for isolate=False) -------


class _Capture(io.TextIOBase):
    """A bounded ``sys.stdout``: the first and last characters, and counts."""

    def __init__(self, mirror: int | None = None) -> None:
        self.mirror = mirror
        self.reset()

    def reset(self) -> None:
        self.head: list[str] = []
        self.head_size = 0
        self.tail: deque[str] = deque()
        self.tail_size = 0
        self.chars = 0
        self.line_breaks = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        size = len(text)
        self.chars += size
        self.line_breaks += text.count("\n")
        if self.head_size < HEAD_CHARS:
            part = text[: HEAD_CHARS - self.head_size]
            self.head.append(part)
            self.head_size += len(part)
            text = text[len(part) :]
            if self.mirror is not None:  # what a call that never returns printed
                with contextlib.suppress(OSError):
                    os.write(self.mirror, part.encode("utf-8", "replace"))
        if text:
            self.tail.append(text)
            self.tail_size += len(text)
            if self.tail_size > 4 * TAIL_CHARS:  # trimmed now and then, not per write
                while self.tail_size - len(self.tail[0]) >= TAIL_CHARS:
                    self.tail_size -= len(self.tail.popleft())
        return size

    def taken(self) -> tuple[str, int, int]:
        """``(text, chars, lines)`` so far, then empty."""
        text = "".join(self.head)
        if self.tail:
            skipped = self.chars - self.head_size - min(self.tail_size, TAIL_CHARS)
            tail = "".join(self.tail)[-TAIL_CHARS:]
            text += (f"\n... ({skipped:,} characters) ...\n" if skipped > 0 else "") + tail
        lines = self.line_breaks + (bool(self.chars) and not text.endswith("\n"))
        result = (text, self.chars, lines)
        self.reset()
        return result


class _Runner:
    """Calls the loaded functions: copies, capture, writes found, plain data back."""

    def __init__(
        self,
        functions: Mapping[str, Callable[..., object]],
        *,
        interruptible: bool = False,
        mirror: int | None = None,
    ) -> None:
        self.functions = functions
        self.kept: dict[int, object] = {}
        # In this process a KeyboardInterrupt may be the user's Ctrl-C: let it
        # through; and fds 1 and 2 are the checker's, redirected during a call.
        self.interruptible = interruptible
        # In a child: the fd where a call's first characters are copied as they
        # come, read by the parent when the call does not return.
        self.mirror = mirror

    def run(self, call_id: int, name: str, args: tuple, arg_names: tuple) -> tuple:
        # The user's own copies; a kept value of the user's that refuses to be
        # copied (a generator in a cache) is passed as it is.
        args = tuple(_copy(self._resolve(arg)) for arg in args)
        snapshot = _snapshot(args)
        start = time.perf_counter()
        with (
            _captured(native=self.interruptible, mirror=self.mirror) as capture,
            warnings.catch_warnings(record=True) as caught,
        ):
            try:
                value = self.functions[name](*args)
                failure = None
            except BaseException as error:  # SystemExit and KeyboardInterrupt are verdicts too
                if self.interruptible and isinstance(error, KeyboardInterrupt):
                    raise
                failure = _describe_failure(error)
                value = None
        seconds = time.perf_counter() - start
        output = (*capture.taken(), _warned(caught))
        wrote = tuple(_written(snapshot, args, arg_names))
        if failure is not None:
            return ("raised", failure, output, wrote, seconds)
        self.kept[call_id] = value
        for old in sorted(self.kept)[:-KEPT_CALLS]:
            del self.kept[old]
        try:
            payload = pickle.dumps(plain(value), protocol=PROTOCOL)
        except Exception as error:  # never the child's end: say what came back
            payload = pickle.dumps(Opaque(type_name(value), f"not plain data ({error})"))
        return ("returned", payload, output, wrote, seconds)

    def _resolve(self, arg: object) -> object:
        if not isinstance(arg, Kept):
            return arg
        value: Any = self.kept[arg.call_id]
        for step in arg.path:
            value = value[step]  # the user's own container
        return value


@contextlib.contextmanager
def _captured(*, native: bool = False, mirror: int | None = None) -> Iterator[_Capture]:
    """``sys.stdout`` and ``sys.stderr`` into one ``_Capture`` for the block.

    ``native``: fds 1 and 2 into a file too, read into the capture afterwards
    (in the checker's own process, where they are the checker's stdout).
    ``mirror``: an fd where the first characters are copied as they come.
    """
    capture = _Capture(mirror)
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = capture
    try:
        if native:
            with _redirect_fds(capture):
                yield capture
        else:
            yield capture
    finally:
        sys.stdout, sys.stderr = saved


@contextlib.contextmanager
def _redirect_fds(capture: _Capture) -> Iterator[None]:
    """fds 1 and 2 into a temporary file for the block (restored after), what
    was written there added to ``capture``."""
    for stream in (sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()  # type: ignore[union-attr]  # the interpreter's own streams
    with tempfile.TemporaryFile() as written:
        saved = [os.dup(1), os.dup(2)]
        os.dup2(written.fileno(), 1)
        os.dup2(written.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            written.seek(0)
            data = written.read(4 * HEAD_CHARS)
            if data:
                capture.write(data.decode("utf-8", "replace"))


def _describe_failure(error: BaseException) -> tuple[str, str]:
    """``("SystemExit: 0", traceback)``: the user's frames only (this package's
    and the import machinery's dropped)."""
    ours = str(Path(__file__).resolve().parent)
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not (frame.filename.startswith(ours) or frame.filename.startswith("<frozen"))
    ]
    lines = ["Traceback (most recent call last):\n"] if frames else []
    lines += traceback.format_list(frames)
    lines += traceback.format_exception_only(type(error), error)
    exception = traceback.format_exception_only(type(error), error)[-1].strip()
    if isinstance(error, SystemExit):
        exception = f"SystemExit({error.code!r}): your code called sys.exit"
    return exception, "".join(lines)


def _warned(caught: list[warnings.WarningMessage]) -> tuple[str, ...]:
    """The distinct warnings of a call: ``"RuntimeWarning: overflow encountered in exp"``."""
    return tuple(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))


def _copy(value: object) -> object:
    try:
        return copy.deepcopy(value)
    except Exception:
        return value


def _snapshot(args: tuple) -> object:
    """A copy of each argument to compare with after the call (None for one
    that cannot be copied: it is not watched)."""
    snapshot = []
    for arg in args:
        try:
            snapshot.append(copy.deepcopy(arg))
        except Exception:
            snapshot.append(_UNWATCHED)
    return tuple(snapshot)


_UNWATCHED = object()


def _written(before: object, after: object, names: Sequence[str]) -> Iterator[str]:
    """The paths (``params['W1']``, ``X``) whose contents differ after the call."""
    if before is None:
        return
    for name, old, new in zip(names, before, after, strict=False):  # type: ignore[call-overload]
        if old is not _UNWATCHED and name not in MAY_WRITE:
            yield from _differences(old, new, name)


def _differences(old: object, new: object, path: str) -> Iterator[str]:
    if isinstance(old, np.ndarray):
        if not isinstance(new, np.ndarray) or old.shape != new.shape or old.dtype != new.dtype:
            yield path
        elif not np.array_equal(old, new, equal_nan=old.dtype.kind in "fc"):
            yield path
    elif isinstance(old, dict):
        if not isinstance(new, dict) or old.keys() != new.keys():
            yield path
            return
        for key in old:
            yield from _differences(old[key], new[key], f"{path}[{key!r}]")
    elif isinstance(old, list | tuple):
        if not isinstance(new, list | tuple) or len(old) != len(new):
            yield path
            return
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            yield from _differences(a, b, f"{path}[{i}]")


# --- the child's main loop ----------------------------------------------------------------


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
    os.chdir(setup["cwd"])
    functions: dict[str, Callable[..., object]] = {}
    with _captured(mirror=mirror) as capture:
        failure = _load_into(functions, setup["functions"])
    output = capture.taken()
    if failure is not None:
        connection.send_bytes(pickle.dumps(("load failed", failure, output), protocol=PROTOCOL))
        return
    if setup["memory_limit"]:
        _limit_memory(setup["memory_limit"])
    connection.send_bytes(pickle.dumps(("loaded", None, output), protocol=PROTOCOL))
    runner = _Runner(functions, mirror=mirror)
    while True:
        try:
            message = connection.recv_bytes()
        except (EOFError, OSError):
            return
        kind, *request = pickle.loads(message)
        if kind == "binds":
            answer = _binds(functions[request[0]], request[1])
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


def _load_into(
    functions: dict, sources: Mapping[str, tuple[str, object]]
) -> tuple[str, str, str, str] | None:
    """Load every function: ``("spec", "file.py:NAME")``, ``("pickled", bytes)``
    or ``("object", f)``; ``(name, kind, problem, traceback)`` for the first that
    fails (``UserCodeLoadError``)."""
    from reference.user_functions import load_function

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
                _put_back_places(functions[name], sent[1], sent[2])
            else:
                functions[name] = source
        except BaseException as error:
            if how == "spec" and isinstance(error, ValueError) and str(error).startswith(name):
                return (name, "argument", str(error).split(": ", 1)[-1], "")
            exception, user_traceback = _describe_failure(error)
            if how == "pickled":
                return (
                    name, "unsendable",
                    f"cannot be loaded in the child process that runs it ({exception}); pass "
                    "isolate=False to run it in this process, without the time and memory limits",
                    user_traceback,
                )  # fmt: skip
            return (name, "raised", f"importing {source} raised {exception}", user_traceback)
    return None


def _binds(function: Callable[..., object], count: int) -> str | None:
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
