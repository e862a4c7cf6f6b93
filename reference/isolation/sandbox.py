"""``Sandbox``: the user's functions, run under an ``Isolation``; a
``UserFunction`` is one of them as the checker calls it."""

from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from manual_bp_reference.isolation.calls import Runner, captured
from manual_bp_reference.isolation.child import bind_error, load_into
from manual_bp_reference.isolation.plain_data import loads_plain
from manual_bp_reference.isolation.processes import (
    adopt_orphans,
    environment_now,
    keep_a_spare,
    stop,
    take_process,
)
from manual_bp_reference.isolation.records import (
    HEAD_CHARS,
    NO_OUTPUT,
    PROTOCOL,
    SOURCE_DIGEST,
    TAIL_CHARS,
    CallRecord,
    Kept,
    Output,
    UserCodeError,
    UserCodeLoadError,
    UserCodeStopped,
    output_from,
)
from manual_bp_reference.isolation.sending import Source, sendable
from manual_bp_reference.isolation.settings import Isolation


class UserFunction:
    """A user's function as the checker calls it: ``f(*args)`` returns plain
    data or raises ``UserCodeError`` / ``UserCodeStopped``; ``.last`` is the
    last call's ``CallRecord``."""

    def __init__(
        self, sandbox: Sandbox, name: str, arg_names: Sequence[str], may_write: Sequence[str] = ()
    ) -> None:
        self.sandbox, self.name, self.arg_names = sandbox, name, tuple(arg_names)
        # Arguments the function writes into by contract (no note): cs231n's
        # bn_param, an optim.py rule's config, the course's parameters, v, s.
        self.may_write = frozenset(may_write)
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
        self._local: Runner | None = None  # isolate=False
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
                keep_a_spare()

    def function(
        self, name: str, arg_names: Sequence[str], *, may_write: Sequence[str] = ()
    ) -> UserFunction:
        """The function ``name``, called with ``arg_names``; writes into the
        arguments in ``may_write`` are its contract, not notes."""
        if name not in self.functions:
            raise KeyError(name)
        return UserFunction(self, name, arg_names, may_write)

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
                with captured() as capture:
                    failure = load_into(functions, sources)
                self.load_output = output_from(capture.taken())
                if failure is not None:
                    raise UserCodeLoadError(*failure, self.load_output)
                self._local = Runner(functions, interruptible=True)
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
            return bind_error(self._local.functions[name], count)
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
        wrote = tuple(path for path in wrote if path.split("[")[0] not in function.may_write)
        output = output if isinstance(output, Output) else output_from(output)
        if kind == "returned":
            record = CallRecord(call, output, wrote, seconds)
            self.history.append(record)
            value = payload if self._local is None else loads_plain(payload)
            return call_id, value, record
        exception, user_traceback = payload
        record = CallRecord(call, output, wrote, seconds, "raised", exception, user_traceback)
        self.history.append(record)
        raise UserCodeError(record)

    def first_output(self) -> Output:
        """What the first call that printed anything printed (nothing if none did)."""
        return next((record.output for record in self.history if record.output), NO_OUTPUT)

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
                f"{len(self.history)} calls; captured, the first call's shown truncated (a "
                "failure shows its own call's)"
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


class _Child:
    """One child process with the user's functions loaded (the parent's side)."""

    def __init__(self, functions: Mapping[str, Source], isolation: Isolation) -> None:
        import cloudpickle  # type: ignore[import-untyped]  # no stubs

        self.isolation = isolation
        sources = {name: sendable(function, cloudpickle) for name, function in functions.items()}
        if isolation.confine:  # what the code detaches comes back to be killed with it
            adopt_orphans()
        self.started = started = take_process()
        self.process, self.connection, self.native = (
            started.process, started.connection, started.native
        )  # fmt: skip
        setup = {
            "sys_path": list(sys.path), "cwd": isolation.folder or os.getcwd(),
            "confine": isolation.confine, "functions": sources,
            "memory_limit": isolation.memory_limit, "digest": SOURCE_DIGEST,
            "environment": environment_now(),
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
        output: Output = output_from(reply[2]) + self._native_output()
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
        stop(self.started)
