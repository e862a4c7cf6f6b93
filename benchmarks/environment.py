"""What every benchmark table is printed with, and the competing process.

``environment_lines()`` names the machine a table was measured on: cores, the
load average, numpy and jax, every thread pool threadpoolctl sees (the BLAS,
its kernel ``architecture``, its threading layer and thread count), the
``OPENBLAS_*`` and ``*_NUM_THREADS`` variables (or that none is set), and who
decides the BLAS threads (``manual_bp.threads.status()``).

``competitor()`` runs one CPU-bound process beside the benchmark, as another
user's job on a shared machine would: started by the benchmark, bounded by its
own deadline, stopped when the ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np

from manual_bp import threads

# The variables a table depends on: OpenBLAS's kernel choice and cache size,
# and every thread-count variable the BLAS libraries read.
RECORDED_PREFIXES = ("OPENBLAS_", "GOTO")
RECORDED_NAMES = (*threads.USER_VARIABLES, "XLA_FLAGS", "PYTEST_XDIST_WORKER")


def recorded_variables() -> dict[str, str]:
    return {
        name: value
        for name, value in sorted(os.environ.items())
        if name.startswith(RECORDED_PREFIXES) or name in RECORDED_NAMES
    }


def environment_lines() -> list[str]:
    """One line each: machine, libraries, thread pools, variables, policy."""
    from threadpoolctl import threadpool_info

    cores = threads.usable_cores()
    load = os.getloadavg()
    lines = [
        f"cores: os.cpu_count() = {os.cpu_count()}, usable (affinity) = {cores}; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1, 5, 15 min)",
    ]
    try:
        import jax

        jax_version = jax.__version__
    except ImportError:
        jax_version = "not installed"
    lines.append(f"numpy {np.__version__}, jax {jax_version}, python {sys.version.split()[0]}")
    for pool in threadpool_info():
        lines.append(
            f"{pool['user_api']}: {pool['internal_api']} {pool.get('version')} "
            f"(kernel {pool.get('architecture')}, {pool.get('threading_layer')}, "
            f"{pool['num_threads']} threads)"
        )
    variables = recorded_variables()
    lines.append(
        "variables: "
        + (", ".join(f"{k}={v}" for k, v in variables.items()) or "no OPENBLAS_* or *_THREADS set")
    )
    status = threads.status()
    lines.append(f"manual_bp.threads: {status.mode} ({status.reason})")
    return lines


def print_environment(title: str = "environment") -> None:
    print(f"{title}:")
    for line in environment_lines():
        print(f"  {line}")
    sys.stdout.flush()


_BUSY_LOOP = (
    "import sys, time\n"
    "end = time.monotonic() + float(sys.argv[1])\n"
    "while time.monotonic() < end:\n"
    "    pass\n"
)


@contextlib.contextmanager
def competitor(seconds: float = 600.0) -> Iterator[subprocess.Popen]:
    """One CPU-bound process (a Python busy loop) for the ``with`` block.

    It stops by itself after ``seconds`` whatever happens to this process,
    and is terminated when the block ends.
    """
    process = subprocess.Popen([sys.executable, "-c", _BUSY_LOOP, str(seconds)])
    try:
        time.sleep(0.2)  # let the scheduler see it
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
