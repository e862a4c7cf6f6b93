"""Hessian- and GGN-vector products as a student writes them, correct and buggy.

``student_hvp(params, X, Y, V, net)`` is an independent, straightforward
R-operator (Pearlmutter's, as the course derives it): its own activation
formulas and derivatives (``sigmoid`` as ``1 / (1 + exp(-z))``, ``sigmoid''``
as ``f' (1 - 2 s)``, ``softplus`` as ``logaddexp``, ...), a plain loop over the
layers, ``np.dot`` products, no work arrays.  ``student_ggn`` is the
Gauss-Newton product in the same style.  Each keyword turns one classic bug on;
``STYLES`` names the correct functions and ``BUGGY`` each bug with the name
``check_hvp``'s catalogue gives it (``manual_bp_reference.hvp_check.BUGS``),
the witnesses of ``property_tests/test_hvp_check.py`` and
``benchmarks/hvp_false_alarms.py``.  NumPy only: they run in the check's child
process.
"""

from __future__ import annotations

from functools import partial

import numpy as np

SLOPE = 0.01  # leaky_relu below 0
K = np.sqrt(2 / np.pi)  # gelu's tanh approximation
C = 0.044715


def _sigmoid(z):
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-z))


def _gelu_parts(z):
    zc = np.clip(z, -10, 10)  # tanh is +-1 past 10: keeps z**3 finite
    t = np.tanh(K * (zc + C * zc**3))
    du = K * (1 + 3 * C * zc**2)
    return t, du, K * 6 * C * zc


def activation(name, z):
    """``(f(z), f'(z), f''(z))``, each written the way a student would."""
    one, zero = np.ones_like(z), np.zeros_like(z)
    if name == "identity":
        return z, one, zero
    if name == "relu":
        return np.maximum(z, 0), (z > 0).astype(z.dtype), zero
    if name == "leaky_relu":
        return np.where(z >= 0, z, SLOPE * z), np.where(z >= 0, 1, SLOPE).astype(z.dtype), zero
    if name == "sigmoid":
        s = _sigmoid(z)
        d = s * (1 - s)
        return s, d, d * (1 - 2 * s)
    if name == "tanh":
        t = np.tanh(z)
        d = 1 - t * t
        return t, d, -2 * t * d
    if name == "softplus":
        s = _sigmoid(z)
        return np.logaddexp(0, z), s, s * (1 - s)
    if name == "elu":
        with np.errstate(over="ignore"):
            e = np.exp(np.minimum(z, 0))
        return np.where(z > 0, z, e - 1), np.where(z > 0, 1, e), np.where(z > 0, 0, e)
    if name == "silu":
        s = _sigmoid(z)
        d = s * (1 - s)
        return z * s, s + z * d, 2 * d + z * d * (1 - 2 * s)
    if name == "gelu":
        t, du, d2u = _gelu_parts(z)
        sech2 = 1 - t * t
        f = 0.5 * z * (1 + t)
        d1 = 0.5 * (1 + t) + 0.5 * z * sech2 * du
        d2 = sech2 * du + 0.5 * z * sech2 * (d2u - 2 * t * du * du)
        return f, d1, d2
    raise ValueError(name)


def _softmax(z):
    e = np.exp(z - z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def _forward(params, X, V, net, bias_direction=True):
    """Z, A, R(Z), R(A), f', f'' of every layer (index 0: the input)."""
    Zs, As, RZs, RAs, D1, D2 = [None], [X], [None], [np.zeros_like(X)], [None], [None]
    for l, name in enumerate(net.activations, 1):
        W, b, VW, Vb = params[f"W{l}"], params[f"B{l}"], V[f"W{l}"], V[f"B{l}"]
        Z = np.dot(W, As[-1]) + b
        RZ = np.dot(VW, As[-1]) + np.dot(W, RAs[-1])
        if bias_direction:
            RZ = RZ + Vb
        if name == "softmax":
            A = _softmax(Z)
            RA = A * RZ - A * np.sum(A * RZ, axis=0, keepdims=True)
            d1 = d2 = None
        else:
            A, d1, d2 = activation(name, Z)
            RA = d1 * RZ
        Zs.append(Z), As.append(A), RZs.append(RZ), RAs.append(RA), D1.append(d1), D2.append(d2)
    return Zs, As, RZs, RAs, D1, D2


def _step(l, dA, RdA, passes, second):
    """``dZl`` and ``R(dZl)`` from ``dAl`` and ``R(dAl)``."""
    _, As, RZs, RAs, D1, D2 = passes
    if D1[l] is None:  # softmax
        A, RA = As[l], RAs[l]
        c = np.sum(A * dA, axis=0, keepdims=True)
        dZ = A * (dA - c)
        RdZ = A * (RdA - np.sum(A * RdA, axis=0, keepdims=True))
        if second:
            RdZ = RdZ + RA * (dA - c) - A * np.sum(RA * dA, axis=0, keepdims=True)
        return dZ, RdZ
    RdZ = D1[l] * RdA
    if second:
        RdZ = RdZ + D2[l] * dA * RZs[l]
    return D1[l] * dA, RdZ


def student_hvp(params, X, Y, V, net, *, second=True, cross=True, back_direction=True,
                bias_direction=True, output="correct", mean_power=1, decay=1.0, sign=1.0,
                ggn=False):  # fmt: skip
    """``H V`` (``ggn=True``: ``G V``) by the R-operator, every bug a keyword."""
    L, m = len(net.activations), X.shape[1]
    passes = _forward(params, X, V, net, bias_direction)
    As, RZs, RAs = passes[1], passes[2], passes[3]
    scale = 1.0 / m**mean_power
    AL, RAL, RZL = As[L], RAs[L], RZs[L]
    canonical = {"mse": "identity", "binary_cross_entropy": "sigmoid",
                 "cross_entropy": "softmax"}[net.loss] == net.activations[-1]  # fmt: skip
    if canonical:
        dZ = (AL - Y) * scale
        if output == "identity":
            RdZ = RZL * scale
        elif output == "diagonal" and net.loss == "cross_entropy":
            RdZ = AL * RZL * scale
        elif output == "diagonal":
            RdZ = RZL * scale
        else:
            RdZ = RAL * scale
    elif output == "identity":
        dZ, RdZ = _step(L, (AL - Y) * scale, RZL * 0, passes, False)[0], RZL * scale
    elif ggn:
        dZ, RdZ = _step(L, (AL - Y) * scale, RAL * scale, passes, False)
    else:
        dZ, RdZ = _step(L, (AL - Y) * scale, RAL * scale, passes, second)
    grads = {}
    for l in range(L, 0, -1):
        W, VW = params[f"W{l}"], V[f"W{l}"]
        RdW = np.dot(RdZ, As[l - 1].T)
        if cross and not ggn:
            RdW = RdW + np.dot(dZ, RAs[l - 1].T)
        grads[f"W{l}"] = sign * (RdW + decay * net.l2 * VW)
        grads[f"B{l}"] = sign * np.sum(RdZ, axis=1, keepdims=True)
        if l > 1:
            dA = np.dot(W.T, dZ)
            RdA = np.dot(W.T, RdZ)
            if back_direction and not ggn:
                RdA = RdA + np.dot(VW.T, dZ)
            if ggn:
                RdZ = _step(l - 1, RdA, RdA, passes, False)[0]
                dZ = RdZ
            else:
                dZ, RdZ = _step(l - 1, dA, RdA, passes, second)
    return {key: grads[key] for key in params}


def student_ggn(params, X, Y, V, net, **bugs):
    """``G V`` in the same style."""
    return student_hvp(params, X, Y, V, net, ggn=True, **bugs)


# The correct styles, by product.
STYLES = {"hessian": student_hvp, "ggn": student_ggn}

# Each bug, by the name check_hvp's catalogue gives it: (product, keywords).
BUGGY = {
    "the second-derivative term missing": ("hessian", {"second": False}),
    "the GGN product returned for the Hessian": ("hessian", {"ggn": True}),
    "the output Hessian of the wrong loss (mse's I/m)": ("hessian", {"output": "identity"}),
    "cross-entropy's output Hessian without p p^T": ("ggn", {"output": "diagonal"}),
    "R(dWl) missing dZl R(A(l-1))^T": ("hessian", {"cross": False}),
    "R(dA(l-1)) missing VWl^T dZl": ("hessian", {"back_direction": False}),
    "VBl left out of R(Zl)": ("hessian", {"bias_direction": False}),
    "the decay missing": ("hessian", {"decay": 0.0}),
    "the decay doubled": ("ggn", {"decay": 2.0}),
    "the batch mean's 1/m missing": ("hessian", {"mean_power": 0}),
    "1/m applied twice": ("ggn", {"mean_power": 2}),
    "the sign flipped": ("hessian", {"sign": -1.0}),
    "the Hessian product returned for the GGN": ("ggn", {"ggn": False}),
}


def buggy(name, net):
    """The student's function with bug ``name`` (``BUGGY``), as a check calls it."""
    product, keywords = BUGGY[name]
    if product == "ggn":
        keywords = {"ggn": True, **keywords}
    return partial(student_hvp, net=net, **keywords)
