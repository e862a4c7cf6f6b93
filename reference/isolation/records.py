"""What crosses the pipe between the checker and the child that runs a user's
code: a call's ``Output`` and ``CallRecord``, the ways user code fails
(``UserCodeError``, ``UserCodeStopped``, ``UserCodeLoadError``), ``Kept`` (part
of an earlier call's return value), and the protocol's constants."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import manual_bp

# How much of a call's output is kept: its first and last characters.
HEAD_CHARS, TAIL_CHARS = 4000, 1000
PROTOCOL = 5
# The folders of this package (``reference/`` in a checkout, ``manual_bp_reference/``
# installed) and of ``manual_bp``: frames and modules in them are the checker's own.
ORACLE_ROOT = Path(__file__).resolve().parents[1]
PRODUCT_ROOT = Path(manual_bp.__file__).resolve().parent
# This package as the process imported it: the child checks it runs the same.
SOURCE_DIGEST = hashlib.sha256(
    b"".join(path.read_bytes() for path in sorted(Path(__file__).parent.glob("*.py")))
).hexdigest()


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

    # What the caller was doing (a check sets the case it was running, and
    # inference the declaration it was trying).
    context: object = None
    conventions: object = None

    def __init__(self, record: CallRecord, verdict: str, detail: str) -> None:
        super().__init__(f"{record.call}: {verdict} ({detail})")
        self.record, self.verdict, self.detail = record, verdict, detail


@dataclass(frozen=True)
class Kept:
    """Part of an earlier call's raw return value, passed to a later call as it
    was (``UserFunction.keep``): a layer's cache, which may be any object."""

    call_id: int
    path: tuple[Any, ...]


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


def output_from(data: object) -> Output:
    return Output(*data) if isinstance(data, tuple) else Output()
