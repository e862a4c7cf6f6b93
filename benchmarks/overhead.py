"""Per-call overhead at the tiny sizes, piece by piece.

At ``[2, 3, 3, 1]``, ``m = 8`` every NumPy call costs about a microsecond
whatever its size, so a step is Python and call overhead.  This script times
each piece of ``DNN.forward`` + ``DNN.compute_gradients`` alone: the core
passes, each input check, the thread policy's per-pass object, and a bare
NumPy loop that computes the same step with no API, no dicts and no checks
(the floor for NumPy code).  Each figure is the best of many short repeats
(``timeit``), which is robust to a loaded machine: it reports what a call
costs when it is not interrupted.

Usage::

    python -m benchmarks.overhead
"""

from __future__ import annotations

import os
import sys
import timeit

import numpy as np

from benchmarks.environment import print_environment
from manual_bp import DNN, network, threads
from manual_bp.validation import check_inputs, check_targets


def best(statement: str, namespace: dict, repeat: int = 500) -> float:
    """Seconds per call, the best of ``repeat`` runs of about 1 ms each (short
    runs, so that some escape the other processes of a loaded machine)."""
    once = timeit.timeit(statement, number=1, globals=namespace)
    number = max(1, int(1e-3 / max(once, 1e-7)))
    return min(timeit.repeat(statement, number=number, repeat=repeat, globals=namespace)) / number


def pieces(sizes: list[int], m: int, activations: list[str], loss: str) -> dict[str, float]:
    net = DNN(sizes, activations, loss, seed=0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((sizes[0], m))
    if sizes[-1] == 1:
        Y = (rng.random((1, m)) > 0.5).astype(float)
    else:
        Y = np.eye(sizes[-1])[:, rng.integers(0, sizes[-1], m)]
    params = net.params
    out, cache = net.forward(X)
    W = [params[f"W{l}"] for l in range(1, len(sizes))]
    B = [params[f"B{l}"] for l in range(1, len(sizes))]

    def bare() -> None:
        """relu hidden layers, the canonical output pair: the same arithmetic."""
        As, Zs = [X], []
        for l, (Wl, Bl) in enumerate(zip(W, B, strict=True)):
            Z = Wl @ As[-1]
            Z += Bl
            if l < len(W) - 1:
                A = np.fmax(Z, 0)
            elif sizes[-1] == 1:
                A = 1 / (1 + np.exp(-Z))
            else:
                E = np.exp(Z - Z.max(axis=0))
                A = E / E.sum(axis=0)
            Zs.append(Z)
            As.append(A)
        dZ = (As[-1] - Y) / m
        for l in range(len(W) - 1, -1, -1):
            dZ @ As[l].T
            dZ.sum(axis=1, keepdims=True)
            if l:
                dA = W[l].T @ dZ
                dZ = dA * (Zs[l - 1] > 0)

    namespace = dict(
        net=net,
        X=X,
        Y=Y,
        out=out,
        cache=cache,
        params=params,
        activations=activations,
        spec=net.net,
        loss=loss,
        network=network,
        threads=threads,
        check_inputs=check_inputs,
        check_targets=check_targets,
        bare=bare,
        n0=sizes[0],
        shape=(sizes[-1], m),
        dtype=net.dtype,
    )
    statements = {
        "DNN.forward + compute_gradients": "o, c = net.forward(X); net.compute_gradients(o, c, Y)",
        "core: forward + backward": (
            "_, c = network.forward(params, X, spec); network.backward(c, Y, spec)"
        ),
        "core forward": "network.forward(params, X, spec)",
        "forward_numpy (no dtype dispatch)": "network.forward_numpy(params, X, activations)",
        "core backward": "network.backward(cache, Y, spec)",
        "check_inputs(X)": "check_inputs(X, n0, dtype)",
        "check_targets(Y)": "check_targets(Y, shape, loss, dtype)",
        "the cache check": "net._check_cache(out, cache)",
        "thread policy: one pass's Gemms": "g = threads.gemms(); g.restore()",
        "bare NumPy step (floor)": "bare()",
    }
    return {name: best(statement, namespace) for name, statement in statements.items()}


def main() -> int:
    print_environment()
    for label, sizes, m, activations, loss in [
        ("tiny", [2, 3, 3, 1], 8, ["relu", "relu", "sigmoid"], "binary_cross_entropy"),
        ("small", [2, 16, 16, 2], 64, ["relu", "relu", "softmax"], "cross_entropy"),
    ]:
        print(f"\n{label} {sizes}, m = {m}, relu hidden, {loss}:\n")
        print("| piece | µs per call (best of 500 runs of ~1 ms) |\n|---|---|")
        for name, seconds in pieces(sizes, m, activations, loss).items():
            print(f"| {name} | {seconds * 1e6:.1f} |")
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
