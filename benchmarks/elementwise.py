"""The elementwise passes around the matrix products, and the variants tried.

XLA fuses the bias, the activation and its derivative into its products;
NumPy makes one pass over memory per operation.  For the hidden arrays of
the speed grid (``n x m`` = 128 x 256, 512 x 512, 1024 x 1024, float64) this
times, best of many short runs:

* relu forward ``Z += B; A = fmax(Z, 0)``: whole arrays (what ``forward``
  does), in blocks of columns (so a block stays in cache between the two
  passes), in blocks of rows (contiguous);
* relu backward ``dZ = [Z > 0] * dA``: the two in-place passes ``backward``
  makes, one multiply by a boolean mask, blocks of rows;
* the bias gradient ``dB = sum of the columns of dZ``;
* the sigmoid kernel: the current one (one ``exp`` per entry) and the
  previous one (``exp(min(z, 0)) / (1 + exp(-|z|))``, two).

Every variant's result is checked equal to the current code's, bitwise.

Usage::

    python -m benchmarks.elementwise
"""

from __future__ import annotations

import os
import sys
import timeit
from collections.abc import Callable

import numpy as np

from benchmarks.environment import print_environment
from manual_bp.activations import ACTIVATIONS

BLOCK_BYTES = 128 * 1024  # a block of each operand in L2


def best(run: Callable[[], object], entries: int) -> float:
    number = max(1, int(2e5 / entries))
    return min(timeit.repeat(run, number=number, repeat=100)) / number


def previous_sigmoid(Z: np.ndarray, out: np.ndarray) -> np.ndarray:
    numerator = np.minimum(Z, 0)
    np.exp(numerator, out=numerator)
    np.abs(Z, out=out)
    np.negative(out, out=out)
    np.exp(out, out=out)
    out += 1
    return np.divide(numerator, out, out=out)


def measure(n: int, m: int, rng: np.random.Generator) -> list[float]:
    """Seconds per run of every variant at one array size (see the module notes)."""
    Z0 = rng.standard_normal((n, m))
    B = rng.standard_normal((n, 1))
    dA = rng.standard_normal((n, m))
    Z, A, dZ, S = (np.empty_like(Z0) for _ in range(4))
    cols = max(8, BLOCK_BYTES // (8 * n))
    rows = max(1, BLOCK_BYTES // (8 * m))

    def forward_whole() -> np.ndarray:
        np.copyto(Z, Z0)
        np.add(Z, B, out=Z)
        return np.fmax(Z, 0, out=A)

    def forward_columns() -> np.ndarray:
        np.copyto(Z, Z0)
        for j in range(0, m, cols):
            block = Z[:, j : j + cols]
            np.add(block, B, out=block)
            np.fmax(block, 0, out=A[:, j : j + cols])
        return A

    def forward_rows() -> np.ndarray:
        np.copyto(Z, Z0)
        for i in range(0, n, rows):
            block = Z[i : i + rows]
            np.add(block, B[i : i + rows], out=block)
            np.fmax(block, 0, out=A[i : i + rows])
        return A

    def copy_only() -> None:
        np.copyto(Z, Z0)

    def backward_two() -> np.ndarray:
        np.greater(Z0, 0, out=dZ)
        return np.multiply(dZ, dA, out=dZ)

    def backward_mask() -> np.ndarray:
        return np.multiply(dA, Z0 > 0, out=dZ)

    def backward_rows() -> np.ndarray:
        for i in range(0, n, rows):
            block = dZ[i : i + rows]
            np.greater(Z0[i : i + rows], 0, out=block)
            np.multiply(block, dA[i : i + rows], out=block)
        return dZ

    entries = n * m
    copy = best(copy_only, entries)
    reference = forward_whole().copy()
    for variant in (forward_columns, forward_rows):
        assert np.array_equal(variant(), reference), variant.__name__
    reference = backward_two().copy()
    for variant in (backward_mask, backward_rows):
        assert np.array_equal(variant(), reference), variant.__name__
    sigmoid = ACTIVATIONS["sigmoid"].kernel
    assert sigmoid is not None
    assert np.array_equal(sigmoid(Z0, S), previous_sigmoid(Z0, A))
    cells = [
        best(forward_whole, entries) - copy,
        best(forward_columns, entries) - copy,
        best(forward_rows, entries) - copy,
        best(backward_two, entries),
        best(backward_mask, entries),
        best(backward_rows, entries),
        best(lambda: dZ.sum(axis=1, keepdims=True), entries),
        best(lambda: sigmoid(Z0, S), entries),
        best(lambda: previous_sigmoid(Z0, A), entries),
    ]
    return cells


def main() -> int:
    print_environment()
    print(
        "\n| n x m | relu fwd: whole | column blocks | row blocks | relu bwd: two passes "
        "| bool mask | row blocks | dB sum | sigmoid: one exp | two exps |"
        "\n|---|---|---|---|---|---|---|---|---|---|"
    )
    rng = np.random.default_rng(0)
    for n, m in [(128, 256), (512, 512), (1024, 1024)]:
        cells = measure(n, m, rng)
        print(f"| {n} x {m} | " + " | ".join(f"{c * 1e6:.0f} µs" for c in cells) + " |")
    print(
        "\n(forward times exclude the copy that restores Z before each run; "
        f"blocks of {BLOCK_BYTES // 1024} KiB)\nload average at the end: {os.getloadavg()[0]:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
