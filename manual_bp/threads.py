"""BLAS threads: used where they pay, never oversubscribed, the user in charge.

NumPy's BLAS (OpenBLAS here) runs every matrix product above a small size on
all the machine's cores.  For the products of a small or medium network that
costs more than it gains: waking the other threads and waiting for the
slowest takes longer than the product itself, and when another process keeps
a core busy, the thread that shares its core stalls the whole product (see
``benchmarks/RESULTS.md``).  So ``forward`` and ``backward`` multiply through
``Gemms.matmul``, which gives each product (``m x k`` times ``k x n``) a
thread count:

* ``work = m k n`` up to ``SINGLE_THREAD_WORK``: nothing is asked of the
  library at all (OpenBLAS runs these on the calling thread itself);
* below ``MULTI_THREAD_WORK[dtype]``, the crossover measured by
  ``benchmarks/crossover.py``: one thread;
* above it: the library's current count, but no more threads than the cores
  no other process is using at that moment (``/proc/loadavg`` counts the
  runnable tasks; where it does not exist, every core is taken as free).

The count is changed only when the next product needs another one, and the
library's count is restored when the pass ends, so no NumPy call outside
manual_bp ever sees a changed setting.

Who is in charge (``status().mode``)
-------------------------------------
``"user"``
    The user has chosen: one of ``USER_VARIABLES`` (``OMP_NUM_THREADS``,
    ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``, ...) is set, or the
    library's thread count differs from the number of usable cores (a
    ``threadpoolctl.threadpool_limits`` context, or the library's own
    ``set_num_threads``).  manual_bp changes nothing.
``"worker"``
    A worker of a multi-process run: a pytest-xdist worker
    (``PYTEST_XDIST_WORKER``), or a process that called
    ``pin_blas_threads``.  Every product runs on one thread, since the other
    workers use the other cores.
``"auto"``
    The per-product counts above.
``"off"``
    ``set_policy(False)``: the library decides, as if manual_bp did not
    exist (benchmarks compare the two).
``"unavailable"``
    threadpoolctl found no BLAS it can control; the library decides.

The counts are process-wide (a BLAS has one thread pool): two Python threads
running manual_bp passes at once may see each other's count for a product;
the numbers are the same, only the speed differs.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

# Setting any of these means the user has chosen the thread count.
USER_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)
# Set in every pytest-xdist worker process.
WORKER_VARIABLES = ("PYTEST_XDIST_WORKER",)

# OpenBLAS multiplies on the calling thread alone when m k n is at most
# SMP_THRESHOLD_MIN * GEMM_MULTITHREAD_THRESHOLD = 65536 * 4 (interface/gemm.c),
# so up to it there is nothing to decide and the library is not even asked.
SINGLE_THREAD_WORK = 65536 * 4
# The crossovers, m k n above which more threads pay on a quiet machine,
# measured by benchmarks/crossover.py (benchmarks/RESULTS.md).  float32
# products take about half as long for the same m k n.
MULTI_THREAD_WORK = {8: 64 * 2**20, 4: 128 * 2**20}
# OpenBLAS's idle threads spin (sched_yield, still runnable) for about 0.1 s
# after a product (THREAD_TIMEOUT, 2^28 cycles) before they sleep: during that
# time /proc/loadavg counts them, and they are not another process.
SPIN_SECONDS = 0.25


def gemm_threads(work: int, itemsize: int, available: int) -> int:
    """The thread count for one product of ``work = m k n`` multiply-adds.

    ``itemsize`` is 8 (float64) or 4 (float32); ``available`` is the most the
    policy may use (the library's count, the free cores).
    """
    if available <= 1 or work < MULTI_THREAD_WORK.get(itemsize, MULTI_THREAD_WORK[8]):
        return 1
    return available


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask where there is one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class _Library(Protocol):
    """The part of a threadpoolctl ``LibController`` used here."""

    def get_num_threads(self) -> int | None: ...

    def set_num_threads(self, num_threads: int) -> object: ...


@dataclass(frozen=True)
class ThreadStatus:
    """Who decides the BLAS threads now, and why (see the module notes)."""

    mode: str
    reason: str
    library_threads: int | None
    cores: int


class _State:
    """The process's policy: the library controller, found once."""

    def __init__(self) -> None:
        self.enabled = True
        self.pinned = False
        self.searched = False
        self.library: _Library | None = None
        self.cores = usable_cores()
        self.last_multi_thread = -1e9
        self._loadavg: int | None = None

    def find_library(self) -> _Library | None:
        """The BLAS controller (threadpoolctl), looked up once: creating a
        ``ThreadpoolController`` scans the loaded libraries (milliseconds)."""
        if not self.searched:
            self.searched = True
            try:
                from threadpoolctl import ThreadpoolController
            except ImportError:
                return None
            blas = ThreadpoolController().select(user_api="blas").lib_controllers
            self.library = blas[0] if blas else None
        return self.library

    def others_running(self) -> int:
        """Runnable tasks of other processes now (``/proc/loadavg``'s fourth
        field counts them, this thread included); 0 where it is unknown."""
        if self._loadavg is None:
            try:
                self._loadavg = os.open("/proc/loadavg", os.O_RDONLY)
            except OSError:
                self._loadavg = -1
        if self._loadavg < 0:
            return 0
        try:
            running = int(os.pread(self._loadavg, 128, 0).split()[3].split(b"/")[0])
        except (OSError, ValueError, IndexError):
            return 0
        own = 1
        if time.monotonic() - self.last_multi_thread < SPIN_SECONDS:
            own += self.cores - 1  # our own BLAS threads, still spinning
        return max(running - own, 0)

    def mode(self) -> tuple[str, str, int | None]:
        """``(mode, reason, library threads)``; see the module notes."""
        if not self.enabled:
            return "off", "set_policy(False)", None
        for name in USER_VARIABLES:
            if os.environ.get(name):
                return "user", f"{name}={os.environ[name]} is set", None
        if self.pinned:
            return "worker", "pin_blas_threads was called in this process", None
        for name in WORKER_VARIABLES:
            if os.environ.get(name):
                return "worker", f"{name}={os.environ[name]} (one process per core)", None
        library = self.find_library()
        if library is None:
            return "unavailable", "threadpoolctl found no BLAS to control", None
        current = library.get_num_threads()
        if current != self.cores:
            return (
                "user",
                f"the BLAS runs {current} threads, not one per usable core ({self.cores}): "
                "a threadpool_limits context or the library's own setting",
                current,
            )
        return "auto", "per-product counts from the measured crossover", current


_STATE = _State()


class Gemms:
    """The matrix products of one pass, each with its thread count.

    Use ``gemms()`` to get one, ``matmul`` for every product, and
    ``restore()`` in a ``finally`` when the pass ends.
    """

    __slots__ = ("_decided", "_library", "_restore", "_threads", "_worker")

    def __init__(self) -> None:
        self._decided = False
        self._worker = False
        self._library: _Library | None = None
        self._restore: int | None = None  # the library's count before the pass
        self._threads: int | None = None  # the library's count now

    def _decide(self) -> None:
        """Find out, once per pass, whether the policy acts (at the first
        product big enough to matter, so small passes never ask)."""
        self._decided = True
        mode, _, current = _STATE.mode()
        self._worker = mode == "worker"
        if mode in ("auto", "worker"):
            self._library = _STATE.find_library()
            if self._library is not None:
                if current is None:
                    current = self._library.get_num_threads()
                self._restore = self._threads = current

    def threads_for(self, work: int, itemsize: int) -> int | None:
        """The count this product runs with (``None``: left to the library)."""
        if work <= SINGLE_THREAD_WORK:
            return None
        if not self._decided:
            self._decide()
        if self._library is None or self._restore is None:
            return None
        if self._worker or gemm_threads(work, itemsize, self._restore) == 1:
            return 1  # without reading the load (2 µs) for a product that stays on one
        available = min(self._restore, _STATE.cores - _STATE.others_running())
        return gemm_threads(work, itemsize, available)

    def matmul(self, A: np.ndarray, B: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``A @ B`` (into ``out`` when given) with this product's thread count."""
        work = A.shape[0] * A.shape[1] * B.shape[1]
        if work > SINGLE_THREAD_WORK:
            threads = self.threads_for(work, A.dtype.itemsize)
            if threads is not None and threads != self._threads:
                assert self._library is not None
                self._library.set_num_threads(threads)
                self._threads = threads
            if threads is not None and threads > 1:
                _STATE.last_multi_thread = time.monotonic()
        return np.matmul(A, B, out=out)

    def restore(self) -> None:
        """Give the library back the count it had before the pass."""
        if self._threads != self._restore:
            assert self._library is not None and self._restore is not None
            self._library.set_num_threads(self._restore)
            self._threads = self._restore


def gemms() -> Gemms:
    """A new ``Gemms`` for one forward or backward pass."""
    return Gemms()


def status() -> ThreadStatus:
    """Who decides the BLAS threads in this process now, and why.

    Examples
    --------
    >>> from manual_bp import threads
    >>> threads.status().mode in {"auto", "user", "worker", "off", "unavailable"}
    True
    """
    mode, reason, current = _STATE.mode()
    library = _STATE.find_library()
    if current is None and library is not None:
        current = library.get_num_threads()
    return ThreadStatus(mode, reason, current, _STATE.cores)


def set_policy(enabled: bool) -> bool:
    """Turn the policy on (default) or off (the library decides every
    count, as if manual_bp did not exist); returns the previous setting."""
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled: expected True or False, got {enabled!r}")
    previous, _STATE.enabled = _STATE.enabled, enabled
    return previous


def pin_blas_threads(threads: int = 1) -> None:
    """For each worker of a multi-process campaign: every BLAS (and OpenMP)
    pool of this process runs ``threads`` threads from now on, for manual_bp
    and for every other NumPy call, so that N workers on N cores do not each
    start N threads.  Call it first thing in the worker."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads: expected an int >= 1, got {threads!r}")
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    _STATE.pinned = True
