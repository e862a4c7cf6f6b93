"""Running one call of a user's function, where it runs (the child, or this
process for ``isolate=False``): copies of the arguments, the output captured,
writes into the arguments found, plain data back."""

from __future__ import annotations

import codecs
import contextlib
import copy
import io
import os
import pickle
import sys
import tempfile
import threading
import time
import traceback
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NoReturn

import numpy as np

from manual_bp_reference.isolation.plain_data import Opaque, plain, type_name
from manual_bp_reference.isolation.records import (
    HEAD_CHARS,
    ORACLE_ROOT,
    PROTOCOL,
    TAIL_CHARS,
    Kept,
)

# Raw return values the child keeps for ``keep`` (the last few calls').
KEPT_CALLS = 8


class Capture(io.TextIOBase):
    """A bounded ``sys.stdout``: the first and last characters, and counts.

    The first ``HEAD_CHARS`` go through ``write`` here, copied to ``mirror`` as
    they come (what a call that never returns printed). After them,
    ``sys.stdout`` and ``sys.stderr`` (where they are this capture) become
    ``self.rest``: a ``TextIOWrapper`` that gathers writes in C and hands them
    over 8 KiB at a time, so a loop of a million prints runs about as fast as at
    a terminal rather than paying a Python call per write. ``captured`` puts the
    streams back; ``taken`` flushes ``rest`` first.  Bytes written to
    ``sys.stdout.buffer`` (``self.bytes``, before and after) come in order
    through ``write``.  Nothing the user's code does closes either.
    """

    encoding = "utf-8"  # as ``rest``'s: one stream to the user's code

    def __init__(self, mirror: int | None = None) -> None:
        self.mirror = mirror
        self.lock = threading.Lock()
        itself = weakref.ref(self)  # no cycle: a call's capture is freed with the call
        self.bytes = _Bytes(itself, "write")
        self.rest = _Rest(_Bytes(itself, "add_to_tail"), self.bytes)
        self.reset()

    def reset(self) -> None:
        self.head: list[str] = []
        self.head_size = 0
        self.tail: deque[str] = deque()
        self.tail_size = 0
        self.chars = 0
        self.line_breaks = 0

    @property
    def name(self) -> str:
        return "<captured output>"

    @property
    def buffer(self) -> io.BufferedIOBase:  # ``sys.stdout.buffer.write(b"...")``
        return self.bytes

    def writable(self) -> bool:
        return True

    def close(self) -> None:  # the user's ``sys.stdout.close()``: nothing to close
        pass

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if type(text) is not str:  # a subclass's own slicing is not the text
            text = str.__str__(text)
        if self.head_size >= HEAD_CHARS:  # a reference to this capture kept by the user
            return self.rest.write(text)
        part = text[: HEAD_CHARS - self.head_size]
        self.head.append(part)
        self.head_size += len(part)
        self.chars += len(part)
        self.line_breaks += part.count("\n")
        if self.mirror is not None:
            with contextlib.suppress(OSError):
                os.write(self.mirror, part.encode("utf-8", "replace"))
        if self.head_size >= HEAD_CHARS:
            for name in ("stdout", "stderr"):
                if getattr(sys, name, None) is self:
                    setattr(sys, name, self.rest)
            self.rest.write(text[len(part) :])
        return len(text)

    def add_to_tail(self, text: str) -> None:
        """What ``rest`` hands over: counted, and its last ``TAIL_CHARS`` kept."""
        with self.lock:  # the user's threads print too
            self.chars += len(text)
            self.line_breaks += text.count("\n")
            self.tail.append(text)
            self.tail_size += len(text)
            if self.tail_size > 4 * TAIL_CHARS:  # trimmed now and then, not per write
                while self.tail_size - len(self.tail[0]) >= TAIL_CHARS:
                    self.tail_size -= len(self.tail.popleft())

    def taken(self) -> tuple[str, int, int]:
        """``(text, chars, lines)`` so far, then empty."""
        if unfinished := self.bytes.decoder.decode(b"", final=True):  # bytes cut mid-character
            self.write(unfinished)
        with contextlib.suppress(ValueError):  # a stream the user's code broke: what reached us
            self.rest.flush()
        text = "".join(self.head)
        if self.tail:
            skipped = self.chars - self.head_size - min(self.tail_size, TAIL_CHARS)
            tail = "".join(self.tail)[-TAIL_CHARS:]
            text += (f"\n... ({skipped:,} characters) ...\n" if skipped > 0 else "") + tail
        lines = self.line_breaks + (bool(self.chars) and not text.endswith("\n"))
        result = (text, self.chars, lines)
        self.reset()
        return result


class _Rest(io.TextIOWrapper):
    """``sys.stdout`` past the head: ``write`` is ``TextIOWrapper``'s, in C; its
    ``buffer`` is the capture's ``bytes`` (in order through ``Capture.write``),
    and it cannot be detached by the user's code (nor closed: ``_Bytes.close``)."""

    closed = False  # never closed; read per write by C for a subclass, so kept cheap

    def __init__(self, sink: _Bytes, user_bytes: _Bytes) -> None:
        super().__init__(sink, encoding="utf-8", errors="surrogatepass", newline="")
        self.user_bytes = user_bytes

    @property
    def buffer(self) -> io.BufferedIOBase:  # type: ignore[override]  # the user's, not the sink
        return self.user_bytes

    @property
    def name(self) -> str:
        return "<captured output>"

    def detach(self) -> NoReturn:
        raise io.UnsupportedOperation("detach: the captured output cannot be detached")


class _Bytes(io.BufferedIOBase):
    """Bytes decoded as UTF-8 (a lone surrogate as ``rest`` encoded it, an
    invalid byte as U+FFFD) and handed to the capture's ``into`` method:
    ``write`` (``sys.stdout.buffer``) or ``add_to_tail`` (``rest``'s sink)."""

    def __init__(self, capture: weakref.ref[Capture], into: str) -> None:
        self.capture = capture
        self.into = into
        self.decoder = codecs.getincrementaldecoder("utf-8")(_DECODING)

    @property
    def name(self) -> str:
        return "<captured output>"

    def writable(self) -> bool:
        return True

    def close(self) -> None:  # a wrapper of the user's freed: nothing to close
        pass

    def write(self, data: Any) -> int:
        view = memoryview(data)  # TypeError for what is not bytes-like, as a real buffer
        capture = self.capture()
        if capture is not None:
            getattr(capture, self.into)(self.decoder.decode(view.tobytes()))
        return view.nbytes


def _surrogates_else_replace(error: UnicodeError) -> tuple[str | bytes, int]:
    try:
        return codecs.lookup_error("surrogatepass")(error)
    except UnicodeDecodeError:  # not an encoded surrogate: bytes the user wrote
        return codecs.replace_errors(error)


_DECODING = "manual_bp_reference.capture"
codecs.register_error(_DECODING, _surrogates_else_replace)


class Runner:
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
            captured(native=self.interruptible, mirror=self.mirror) as capture,
            warnings.catch_warnings(record=True) as caught,
        ):
            try:
                value = self.functions[name](*args)
                failure = None
            except BaseException as error:  # SystemExit and KeyboardInterrupt are verdicts too
                if self.interruptible and isinstance(error, KeyboardInterrupt):
                    raise
                failure = describe_failure(error)
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
def captured(*, native: bool = False, mirror: int | None = None) -> Iterator[Capture]:
    """``sys.stdout`` and ``sys.stderr`` into one ``Capture`` for the block.

    ``native``: fds 1 and 2 into a file too, read into the capture afterwards
    (in the checker's own process, where they are the checker's stdout).
    ``mirror``: an fd where the first characters are copied as they come.
    """
    capture = Capture(mirror)
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = capture
    try:
        if native:
            with redirect_fds(capture):
                yield capture
        else:
            yield capture
    finally:
        sys.stdout, sys.stderr = saved


@contextlib.contextmanager
def redirect_fds(capture: Capture) -> Iterator[None]:
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


def describe_failure(error: BaseException) -> tuple[str, str]:
    """``("SystemExit: 0", traceback)``: the user's frames only (this package's
    and the import machinery's dropped)."""
    ours = os.path.join(ORACLE_ROOT, "")  # the checker's frames, not manual_bp's
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
        if old is not _UNWATCHED:
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
