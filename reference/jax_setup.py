"""jax, configured once for the oracle side: every module imports it from here.

Importing this module (and so anything in ``reference/`` that runs jax) has
process-wide effects, deliberately in one place:

* ``jax_enable_x64``: jax computes in float64 when given float64, as the
  oracle needs.  It applies to every jax computation in the process, the
  caller's own included.
* ``jax_cpu_enable_async_dispatch = False``: the oracle reads every result
  back at once, so handing each call to a dispatch thread only adds work
  (about a third of a small call's CPU time; ``benchmarks/RESULTS.md``).  It
  is read when jax creates its CPU client, so it has no effect if jax has
  already computed something before this import.
* **the persistent compilation cache**: what jax compiles is kept on disk, so
  a check run again (the same network, the same bucket) loads its compiled
  oracle instead of compiling it.  Where: ``cache.compile_cache_folder()``,
  ``jax`` in the platform's per-user cache folder (``~/.cache/manual-bp/jax``
  on Linux), never the working directory; ``MANUAL_BP_COMPILE_CACHE=off``
  turns it off, an absolute path moves it.  A cache folder the user gave
  jax (``JAX_COMPILATION_CACHE_DIR``) is left as it is.  Every compile is
  kept (no minimum compile time), and the cache has a size limit, which
  makes jax read and write it under a file lock
  (``filelock``), so processes that share it (a check in each of two
  terminals, a campaign's workers) never read a half-written entry; without
  ``filelock`` installed the cache stays off, with a warning.  Like
  x64 it applies to the process's own jax code too.  jax treats the folder
  as trusted code: it is the user's own, like ``~/.cache`` itself.

``compiles()`` counts what was compiled and what came from the cache (a
check's report carries the difference, ``CompileCount``).

>>> from manual_bp_reference.jax_setup import jnp
>>> jnp.zeros(1, dtype="float64").dtype
dtype('float64')
"""

from __future__ import annotations

import gc
import importlib.util
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

from manual_bp_reference.cache import compile_cache_folder

# jax's import allocates enough objects to trigger several full collections,
# a sixth of its time (benchmarks/RESULTS.md): none while it imports.
_collecting = gc.isenabled()
gc.disable()
try:
    import jax
    import jax.numpy as jnp
    from jax import monitoring
finally:
    if _collecting:
        gc.enable()

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_cpu_enable_async_dispatch", False)

# The cache's size limit: LRU eviction past it (a small network's entry is
# tens of kilobytes, a bucket's about a megabyte).
CACHE_BYTES = 512 * 2**20


def _use_compile_cache() -> Path | None:
    """Point jax's persistent cache at ``compile_cache_folder()``, unless the
    user configured one; the folder in use, or None."""
    chosen = jax.config.jax_compilation_cache_dir  # type: ignore[attr-defined]
    if chosen:
        return Path(chosen)
    folder = compile_cache_folder()
    if folder is None:
        return None
    if importlib.util.find_spec("filelock") is None:
        # Without its lock jax's cache may read an entry another process is
        # writing: no cache, said once (the oracle extra installs filelock).
        warnings.warn(
            "manual-bp: the compilation cache is off: it needs the filelock package "
            "(pip install 'manual-bp[oracle]')",
            stacklevel=2,
        )
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    jax.config.update("jax_compilation_cache_max_size", CACHE_BYTES)
    return folder


COMPILE_CACHE = _use_compile_cache()


@dataclass(frozen=True)
class CompileCount:
    """XLA compilations: ``compiled`` (new), ``from_cache`` (loaded from the
    persistent cache) and the ``seconds`` both took."""

    compiled: int = 0
    from_cache: int = 0
    seconds: float = 0.0

    def __sub__(self, other: CompileCount) -> CompileCount:
        return CompileCount(
            self.compiled - other.compiled,
            self.from_cache - other.from_cache,
            round(self.seconds - other.seconds, 3),
        )

    def as_dict(self) -> dict[str, int | float]:
        return {"compiled": self.compiled, "from_cache": self.from_cache, "seconds": self.seconds}


_lock = threading.Lock()
_counts: dict[str, float] = {"requests": 0, "hits": 0, "seconds": 0.0}
# jax records each backend compile request (a cache load included) as this
# duration event, and a load as the cache-hit event inside it.
_BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"
_CACHE_HIT = "/jax/compilation_cache/cache_hits"


def _on_duration(event: str, duration_secs: float, **_: str | int) -> None:
    if event == _BACKEND_COMPILE:
        with _lock:
            _counts["requests"] += 1
            _counts["seconds"] += duration_secs


def _on_event(event: str, **_: str | int) -> None:
    if event == _CACHE_HIT:
        with _lock:
            _counts["hits"] += 1


monitoring.register_event_duration_secs_listener(_on_duration)
monitoring.register_event_listener(_on_event)


def compiles() -> CompileCount:
    """The process's compilations so far; subtract two to count a stretch."""
    with _lock:
        requests, hits, seconds = _counts["requests"], _counts["hits"], _counts["seconds"]
    return CompileCount(int(requests - hits), int(hits), seconds)


__all__ = ["COMPILE_CACHE", "CompileCount", "compiles", "jax", "jnp"]
