"""Speed of the hand-written Hessian-vector product against the plain gradient and jax.

The issue's goal: an HVP at no more than 2.5 times the plain gradient's time
for the ``medium`` network (``benchmarks.speed.SIZES``: ``[64, 128, 128, 10]``,
m = 256, relu hidden layers, softmax + cross_entropy), measured in one run
beside ``jax.jit`` of the jax equivalent.

What it times (one process, every method in every round, medians of single calls)
-------------------------------------------------------------------------------
``grad``
    ``network.forward`` then ``network.backward``: the plain gradient, no input checks.
``hvp``
    ``curvature.hessian_vector_product`` (its input checks included).
``ggn``
    ``curvature.ggn_vector_product`` (checks included).
``jit_grad``
    ``jax.jit(jax.grad(batch_loss))`` of the same forward, warm, inputs on the device.
``jit_hvp``
    ``jax.jit`` of ``jax.jvp(jax.grad(batch_loss))``: forward-over-reverse.

Ratios: ``hvp / grad`` (the goal, <= 2.5), ``jit_hvp / jit_grad`` (jax's own
ratio, the same algorithm) and ``hvp / jit_hvp``.

Usage, from the repository root::

    python -m benchmarks.curvature_speed                 # medium, float64, about 30 s
    python -m benchmarks.curvature_speed --size small --dtype float32 --hidden tanh
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from benchmarks.environment import print_environment
from benchmarks.speed import SIZES
from manual_bp import Net, network
from manual_bp.curvature import ggn_vector_product, hessian_vector_product
from manual_bp.network import init_params

GOAL = 2.5


def median_call(run: Callable[[], object], seconds: float) -> float:
    """The median of single calls of ``run`` over about ``seconds``."""
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 5:
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def methods(size: str, dtype: str, hidden: str) -> dict[str, Callable[[], object]]:
    """The timed calls of one network, each run once (warm)."""
    from manual_bp_reference.jax_setup import jax, jnp

    sizes, m = SIZES[size]
    depth = len(sizes) - 1
    output, loss = (
        ("sigmoid", "binary_cross_entropy") if sizes[-1] == 1 else ("softmax", "cross_entropy")
    )
    net = Net.of(sizes, [hidden] * (depth - 1) + [output], loss)
    rng = np.random.default_rng(0)
    params = init_params(sizes, net.activations, seed=0, dtype=dtype)
    params = {k: (v + 0.1 * rng.standard_normal(v.shape)).astype(dtype) for k, v in params.items()}
    V = {k: rng.standard_normal(v.shape).astype(dtype) for k, v in params.items()}
    X = rng.standard_normal((sizes[0], m)).astype(dtype)
    if sizes[-1] == 1:
        Y = rng.integers(0, 2, (1, m)).astype(dtype)
    else:
        Y = np.eye(sizes[-1], dtype=dtype)[:, rng.integers(0, sizes[-1], m)]

    def grad() -> object:
        _, cache = network.forward(params, X, net)
        return network.backward(cache, Y, net)

    def objective(p, X, Y):
        return network.batch_loss(p, X, Y, net, xp=jnp)

    jit_grad_fn = jax.jit(jax.grad(objective))
    jit_hvp_fn = jax.jit(
        lambda p, v, X, Y: jax.jvp(lambda q: jax.grad(objective)(q, X, Y), (p,), (v,))[1]
    )
    jp, jV, jX, jY = (jax.device_put(a) for a in (params, V, X, Y))
    calls: dict[str, Callable[[], object]] = {
        "grad": grad,
        "hvp": lambda: hessian_vector_product(params, X, Y, net, V),
        "ggn": lambda: ggn_vector_product(params, X, Y, net, V),
        "jit_grad": lambda: jax.block_until_ready(jit_grad_fn(jp, jX, jY)),
        "jit_hvp": lambda: jax.block_until_ready(jit_hvp_fn(jp, jV, jX, jY)),
    }
    for run in calls.values():
        run()
    # The products agree (float64: to rounding).
    manual, oracle = calls["hvp"](), jax.device_get(calls["jit_hvp"]())
    assert isinstance(manual, dict)
    error = max(float(np.max(np.abs(manual[k] - oracle[k]))) for k in manual)
    scale = max(float(np.max(np.abs(oracle[k]))) for k in manual)
    print(f"HVP vs jax: max |difference| {error:.2e} of max |entry| {scale:.2e}")
    return calls


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium", choices=sorted(SIZES))
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--hidden", default="relu")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.5, help="per method per round")
    args = parser.parse_args(argv)
    print_environment("curvature speed")
    calls = methods(args.size, args.dtype, args.hidden)
    medians: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(args.rounds):
        for name, run in calls.items():
            medians[name].append(median_call(run, args.seconds))
    t = {name: statistics.median(values) for name, values in medians.items()}
    sizes, m = SIZES[args.size]
    print(f"\n{args.size} {sizes}, m = {m}, {args.dtype}, hidden {args.hidden}")
    print("| method | median ms |\n|---|---|")
    for name, value in t.items():
        print(f"| {name} | {value * 1e3:.3f} |")
    ratio = t["hvp"] / t["grad"]
    verdict = "met" if ratio <= GOAL else "NOT met"
    print(f"\nhvp / grad         = {ratio:.2f}  (goal <= {GOAL}: {verdict})")
    print(f"ggn / grad         = {t['ggn'] / t['grad']:.2f}")
    print(f"jit_hvp / jit_grad = {t['jit_hvp'] / t['jit_grad']:.2f}")
    print(f"hvp / jit_hvp      = {t['hvp'] / t['jit_hvp']:.2f}")
    print(f"grad / jit_grad    = {t['grad'] / t['jit_grad']:.2f}")


if __name__ == "__main__":
    main()
