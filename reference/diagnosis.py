"""Name the likely bug behind a mismatch, from its pattern.

Walking back from the output in the order the backward pass computes
(``ZL, WL, BL, A(L-1), Z(L-1), ...``), the first variable that fails is where
the disagreement starts: everything after it inherits the error.  Its pattern
names the bug class:

* the manual value is the oracle's times ``m`` or ``1/m``: a missing or extra 1/m
  (times ``m / n_L``: divided by the wrong dimension of ``Y``, a missing 1/m);
* times ``-1``: a sign flip;  times ``2`` on an mse output: the 2 of the square;
* the transposed shape, or ``W`` used where ``W^T`` belongs: a transposed matrix;
* a bias of the wrong shape, averaged, or from one sample: the bias sum;
* ``dWl`` equal to ``dZl A_k^T`` for another layer k, or of its shape: a
  cache entry from the wrong layer; a shape that is part of the expected one:
  a sliced gradient; any other: a wrong shape;
* ``dZl`` wrong while ``dAl`` agrees: a wrong activation derivative, and for
  softmax, ``A (1 - A) dA``: softmax handled as elementwise;
* at a layer with dropout, ``dZl`` ``keep`` times the oracle's: the
  backward's ``1/keep_prob`` missing; ``dZl`` right only where the mask keeps
  a unit: the mask not applied in the backward;
* ``dZL`` equal to ``AL / m`` (or ``AL``) at a cross-entropy output where
  some ``Y`` is not 0: the label term ``- Y`` forgotten;
* in a normalized layer (``manual_bp.normalization``): ``dNl`` wrong while
  ``dAl`` agrees is the activation derivative; ``dgammal``, ``dbetal`` or
  ``dZhatl`` wrong while ``dNl`` agrees is that step; ``dZl`` wrong while
  ``dZhatl`` agrees is the normalization backward itself (a ``1/m`` term,
  the variance, ``eps``: ``property_tests/mutations.py`` lists them).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np

from manual_bp.architecture import backward_order
from manual_bp.losses import LOSSES
from manual_bp_reference.cases import Case

Array = np.ndarray
# Same-shape patterns are recognised up to float32 rounding.
_CLOSE = 1e-4


@dataclass(frozen=True)
class Diagnosis:
    """Where the disagreement starts and what it most likely is."""

    layer: int
    key: str
    bug_class: str
    evidence: str

    def __str__(self) -> str:
        return (
            f"disagreement starts at {self.key} (layer {self.layer}); "
            f"likely bug: {self.bug_class} ({self.evidence})"
        )


def _close(candidate: Array, target: Array) -> bool:
    if candidate.shape != target.shape:
        return False
    scale = np.linalg.norm(target) + np.linalg.norm(candidate)
    return bool(np.linalg.norm(candidate - target) <= _CLOSE * scale and scale > 0)


def _scale_factor(manual: Array, oracle: Array) -> float | None:
    """``c`` with ``manual = c * oracle``, if such a c fits."""
    denominator = float(np.sum(oracle * oracle))
    if denominator == 0:
        return None
    c = float(np.sum(manual * oracle)) / denominator
    return c if _close(manual, c * oracle) else None


def _near(value: float, target: float) -> bool:
    return abs(value - target) <= 1e-3 * abs(target)


def _classify_normalized(
    name: str, l: int, manual: Array | None, expected: Array
) -> tuple[str, str] | None:
    """The bug class of a normalized layer's first failing variable, or
    ``None`` for the patterns every layer shares (``_classify``)."""
    if manual is None or np.shape(manual) != expected.shape:
        return None
    c = _scale_factor(np.asarray(manual, dtype=np.float64), expected)
    if c is not None and _near(c, -1):
        return None
    if name == "N":
        return "wrong activation derivative", f"dA{l} agrees but dN{l} does not"
    if name in ("gamma", "beta"):
        return f"wrong d{name}", f"dN{l} agrees but d{name}{l} does not"
    if name == "Zhat":
        return "wrong dZhat", f"dN{l} agrees but dZhat{l} = gamma{l} * dN{l} does not"
    if name in ("Z", "mu", "var"):
        return (
            "wrong normalization backward",
            f"dZhat{l} agrees but d{name}{l} does not (a 1/m term, the variance, eps?)",
        )
    return None


def _dropout_bug(
    case: Case, key: str, manual: Array, expected: Array, c: float | None
) -> tuple[str, str] | None:
    """At a layer that drops units (``Al = f(Zl) Ml / keep``): ``dZl`` (or a
    gradient made of it) ``keep`` times the oracle's is the backward's missing
    ``1/keep_prob``; agreeing where ``Ml`` keeps and not where it drops is the
    mask not applied in the backward; zero wherever ``Ml`` keeps a unit, keep
    and drop swapped (``1 - Ml`` in the backward)."""
    l = int(key[1:])
    rate = case.dropout[l - 1] if case.dropout else 0.0
    if not rate or key[0] not in "ZB":
        return None
    keep = 1.0 - rate
    if c is not None and _near(c, keep):
        return "dropout: 1/keep_prob missing", f"d{key} = keep_prob ({keep:.3g}) x oracle"
    mask = np.asarray(case.masks[f"M{l}"])
    if key[0] != "Z" or mask.shape != manual.shape:
        return None
    kept = mask != 0
    if np.any(mask == 0):
        if _close(manual[kept], expected[kept]) and not _close(manual, expected):
            return (
                "dropout: mask not applied in the backward",
                f"dZ{l} agrees where M{l} keeps a unit and not where it drops one",
            )
    if np.all(manual[kept] == 0) and np.any(expected[kept] != 0):
        return (
            "dropout: keep and drop swapped",
            f"dZ{l} is 0 wherever M{l} keeps a unit (the backward multiplies by 1 - M{l})",
        )
    return None


def _classify(
    case: Case,
    key: str,
    manual: Array | None,
    oracle: Mapping[str, Array],
    cache: Mapping[str, Array],
) -> tuple[str, str]:
    kind, l = key[0], int(key[1:])
    depth, m, activations, loss, Y = case.depth, case.m, case.activations, case.loss, case.Y
    expected = oracle[key]
    if manual is None:
        return "off by one layer", f"{key} is missing from grads"
    manual = np.asarray(manual, dtype=np.float64)
    if manual.shape != expected.shape:
        if manual.shape == expected.shape[::-1]:
            return "transposed matrix", "its shape is the expected one, transposed"
        if kind == "B":
            return "bias sum axis", f"bias of shape {manual.shape}, expected {expected.shape}"
        sizes = case.layer_sizes
        if kind == "W" and manual.shape in {(sizes[l], n) for n in sizes} - {expected.shape}:
            return (
                "cache entry from the wrong layer",
                f"shape {manual.shape}: dZ{l} times another layer's activations",
            )
        if manual.ndim == expected.ndim and all(
            a <= b for a, b in zip(manual.shape, expected.shape, strict=True)
        ):
            return (
                "sliced gradient",
                f"shape {manual.shape} is part of {expected.shape}: rows or columns cut off "
                "(a slice, or a bias column taken out of W)",
            )
        return "wrong shape", f"shape {manual.shape}, expected {expected.shape}"

    c = _scale_factor(manual, expected)
    dropped = _dropout_bug(case, key, manual, expected, c)
    if dropped is not None:
        return dropped
    if kind == "B" and c is not None and _near(c, 1 / m) and m > 1:
        return "bias sum axis", f"averaged over the batch instead of summed (x 1/{m})"
    if kind == "B" and _close(manual, oracle[f"Z{l}"][:, :1]):
        return "bias sum axis", "equals the first column of dZ: not summed over the batch"
    if c is not None:
        if m > 1 and _near(c, m):
            return "missing 1/m", f"manual = {m} x oracle (m = {m})"
        if m > 1 and _near(c, 1 / m):
            return "extra 1/m", f"manual = oracle / {m} (m = {m})"
        n_out = case.layer_sizes[-1]
        if n_out > 1 and n_out != m and _near(c, m / n_out):
            return "missing 1/m", (
                f"manual = m / n_L x oracle (m = {m}, n_L = {n_out}): divided by n_L, "
                "the targets' other dimension (Y.shape[0] for columns), instead of m"
            )
        if _near(c, -1):
            return "sign flip", "manual = -oracle"
        if _near(c, 2) and loss == "mse" and key == f"Z{depth}":
            return "factor of 2 in mse", "manual dZ = 2 x oracle at the mse output"
    if kind == "W":
        for k in range(depth + 1):
            if k != l - 1 and _close(manual, oracle[f"Z{l}"] @ cache[f"A{k}"].T):
                return "cache entry from the wrong layer", f"dW{l} = dZ{l} A{k}^T, not A{l - 1}^T"
        if _close(manual, expected.T):
            return "transposed matrix", f"dW{l} is the transpose of the oracle's"
    W_next = cache[f"W{l + 1}"] if kind == "A" else None
    if (
        W_next is not None
        and W_next.shape[0] == W_next.shape[1]
        and _close(manual, W_next @ oracle[f"Z{l + 1}"])
    ):
        return "transposed matrix", f"dA{l} = W{l + 1} dZ{l + 1}, not W{l + 1}^T dZ{l + 1}"
    if kind == "Z":
        A = cache[f"A{l}"]
        canonical = l == depth and activations[l - 1] == LOSSES[loss].canonical_activation
        # dZL = A/m (or A): the - Y missing.  Told apart only where some Y is not 0
        # (else A - Y is A), and never from a mere proportion (a 1 x 1 array is
        # proportional to anything).
        A64 = np.asarray(A, np.float64)
        if (
            canonical
            and loss != "mse"
            and np.any(np.asarray(Y) != 0)
            and (_close(manual, A64 / m) or _close(manual, A64))
        ):
            return "label term forgotten", f"dZ{l} equals A{l}/m: the - Y is missing"
        if activations[l - 1] == "softmax":
            dA = (A - Y) / m if l == depth else oracle[f"A{l}"]
            if _close(manual, A * (1 - A) * dA):
                return "softmax as elementwise", "dZ = A (1 - A) dA, the Jacobian's diagonal only"
            return "softmax as elementwise", "the softmax Jacobian-vector product is wrong"
        if l < depth:
            return "wrong activation derivative", f"dA{l} agrees but dZ{l} does not"
        return "wrong activation derivative", f"the output gradient dZ{l} is wrong"
    return "unclassified", f"{key} differs with no recognised pattern"


def diagnose(
    case: Case,
    failing: Collection[str],
    manual: Mapping[str, Array],
    oracle: Mapping[str, Array],
    cache: Mapping[str, Array],
    *,
    input_gradient: bool = False,
) -> Diagnosis | None:
    """The first failing key walking back from the output, and its likely bug.

    ``manual`` and ``oracle`` are the two gradient dicts of ``case``, and
    ``cache`` is manual_bp's forward cache of it.
    """
    order = backward_order(case.depth, input_gradient, normalization=case.normalization)
    for key in order:
        if key in failing:
            name = key.rstrip("0123456789")
            layer = int(key[len(name) :])
            if name != "A" and case.normalization and case.normalization[layer - 1]:
                found = _classify_normalized(name, layer, manual.get(key), oracle[key])
                if found is not None:
                    return Diagnosis(layer, key, *found)
            bug_class, evidence = _classify(case, key, manual.get(key), oracle, cache)
            return Diagnosis(layer, key, bug_class, evidence)
    return None
