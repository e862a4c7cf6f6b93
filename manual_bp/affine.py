"""The affine step of a dense layer, forward and backward, by hand.

::

    Zl = Wl A(l-1) + Bl          Wl: (nl, n(l-1))   A(l-1): (n(l-1), m)   Bl: (nl, 1)

The bias is added to every column (NumPy broadcasting over the batch).  The
backward, with ``dZ = dL/dZl`` (the batch mean's ``1/m`` is already in it)::

    dWl     = dZ A(l-1)^T            (nl, n(l-1))   sums over the batch
    dBl     = sum of the columns of dZ   (nl, 1)
    dA(l-1) = Wl^T dZ                (n(l-1), m)

The cache is ``(A(l-1), Wl)``: ``Bl`` is not needed.  In the network's cache
they are ``A(l-1)`` and ``Wl`` (``manual_bp.architecture.cache_keys``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Array = np.ndarray
Matmul = Callable[..., Array]


def forward(A_prev: Array, W: Array, B: Array) -> Array:
    """``Zl = Wl A(l-1) + Bl`` over any array namespace (operators only)."""
    return W @ A_prev + B


def backward(
    dZ: Array,
    A_prev: Array,
    W: Array | None,
    matmul: Matmul = np.matmul,
    out_W: Array | None = None,
    out_B: Array | None = None,
    out_A: Array | None = None,
) -> tuple[Array, Array, Array | None]:
    """``(dWl, dBl, dA(l-1))`` from ``dZ`` and the cache ``(A(l-1), Wl)``.

    ``dA(l-1)`` is ``None`` when ``W`` is (layer 1 of a network whose input
    gradient nobody asked for: ``Wl`` is then not even read).  ``matmul`` is
    the product to use (``manual_bp.threads`` picks one per size); ``out_W``,
    ``out_B``, ``out_A`` are arrays to write ``dWl``, ``dBl``, ``dA(l-1)``
    into, ``None`` for new ones.
    """
    dW = matmul(dZ, A_prev.T, out=out_W)
    dB = dZ.sum(axis=1, keepdims=True, out=out_B)
    dA_prev = None if W is None else matmul(W.T, dZ, out=out_A)
    return dW, dB, dA_prev
