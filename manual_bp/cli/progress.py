"""Progress bars for the long commands (demo, train, audit), with ``tqdm``.

The core prints nothing: ``DNN.fit`` and ``manual_bp_reference.sweep.sweep`` take a
callback, and the commands pass one that advances a bar.  The bar goes to
stderr, and only when stderr is a terminal and ``--quiet`` is not given: in
a pipe, a log file or a test, the output stays exactly the text the command
prints.  ``tqdm`` is the ``progress`` extra (``pip install 'manual-bp[progress]'``);
without it the commands run without a bar.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Progress:
    """Advance a bar by steps, and print text without tearing the bar."""

    def __init__(self, bar: Any = None) -> None:
        self.bar = bar

    @property
    def shown(self) -> bool:
        return self.bar is not None

    def advance(self, steps: int = 1, **postfix: object) -> None:
        if self.bar is None:
            return
        if postfix:
            self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(steps)

    def print(self, *lines: str) -> None:
        """``print`` to stdout; the bar is cleared first and redrawn after."""
        if self.bar is None:
            print(*lines, sep="\n")
            return
        with self.bar.external_write_mode(file=sys.stdout):
            print(*lines, sep="\n")


def wanted(quiet: bool) -> bool:
    """A bar is drawn only on a terminal, and never under ``--quiet``."""
    isatty = getattr(sys.stderr, "isatty", None)
    return not quiet and bool(isatty and isatty())


@contextmanager
def progress(total: int, description: str, unit: str, quiet: bool) -> Iterator[Progress]:
    """``with progress(300, "training", "epoch", args.quiet) as bar: bar.advance()``."""
    if not wanted(quiet):
        yield Progress()
        return
    try:
        from tqdm.auto import tqdm  # a widget if this runs in a Jupyter kernel
    except ImportError:  # the progress extra is not installed: no bar
        yield Progress()
        return
    with tqdm(
        total=total, desc=description, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True
    ) as bar:
        yield Progress(bar)
