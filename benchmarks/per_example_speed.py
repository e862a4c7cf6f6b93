"""Per-example gradient norms against the plain gradient, by hand and in jax, in one run.

The issue's goal (issue 28): per-example gradient norms for the ``medium``
network (``benchmarks.speed.SIZES``: ``[64, 128, 128, 10]``, m = 256, relu
hidden layers, softmax + cross-entropy, float64) at <= 1.5x the plain
gradient's time, measured against ``jax.jit`` of the jax equivalent.

What it times (every method in every round, single calls, medians)
-----------------------------------------------------------------
``plain``
    ``network.forward`` then ``network.backward``: the plain gradient, no
    input checks (``benchmarks.speed``'s ``core``).
``plain_dnn``
    ``DNN.forward`` then ``DNN.compute_gradients``: the same with the input
    checks (``benchmarks.speed``'s ``dnn``).
``norms``
    ``manual_bp.per_example.per_example_norms(params, X, Y, net)``: input
    checks, the forward, the unaveraged backward without the ``dWl``
    products, Goodfellow's ``||dZl_i||^2 (||A(l-1)_i||^2 + 1)``.
``gradients``
    ``per_example_gradients``: every ``(m, nl, n(l-1))`` outer product, for scale.
``jit``
    ``jax.jit(jax.grad(batch_loss))`` of the same forward, warm, on device
    arrays, ``block_until_ready``.
``jit_norms``
    ``jax.jit`` of ``sqrt(sum of squares)`` of ``jax.vmap(jax.grad(l_i))``:
    jax's per-example norms (XLA may fuse away the per-example arrays).

Ratios: ``norms / plain`` (the goal), ``norms / plain_dnn`` (both with
checks), ``jit_norms / jit`` (jax's own), and ``norms / jit_norms``.

Usage, from the repository root::

    python -m benchmarks.per_example_speed                 # medium, float64
    python -m benchmarks.per_example_speed --sizes small,medium --rounds 5
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.environment import print_environment
from benchmarks.speed import SIZES, Method, Point, Times, format_time, make_batch, time_point
from manual_bp import DNN, network
from manual_bp.per_example import per_example_gradients, per_example_norms

GOAL = 1.5  # norms / plain, the issue's


def methods(point: Point) -> dict[str, Method]:
    """The timed methods of one size, each run once (warm, compiled)."""
    from manual_bp_reference.jax_setup import jax, jnp

    dnn = DNN(point.layer_sizes, list(point.activations), point.loss, seed=0, dtype=point.dtype)
    X, Y = make_batch(point, np.random.default_rng(0))
    params, net = dict(dnn.params), dnn.net

    def plain() -> object:
        _, cache = network.forward(params, X, net)
        return network.backward(cache, Y, net)

    def plain_dnn() -> object:
        out, cache = dnn.forward(X)
        return dnn.compute_gradients(out, cache, Y)

    def objective(p, X, Y):
        return network.batch_loss(p, X, Y, net, xp=jnp)

    def loss_one(p, x, y):
        return network.batch_loss(p, x[:, None], y[:, None], net, xp=jnp)

    def norms_jax(p, X, Y):
        grads = jax.vmap(jax.grad(loss_one), in_axes=(None, 1, 1))(p, X, Y)
        m = X.shape[1]
        return jnp.sqrt(sum(jnp.sum(g.reshape(m, -1) ** 2, axis=1) for g in grads.values()))

    jit_grad, jit_norms = jax.jit(jax.grad(objective)), jax.jit(norms_jax)
    jparams = {key: jax.device_put(value) for key, value in params.items()}
    jX, jY = jax.device_put(X), jax.device_put(Y)
    # The two sides agree before anything is timed.
    ours, theirs = per_example_norms(params, X, Y, net), np.asarray(jit_norms(jparams, jX, jY))
    assert np.allclose(ours, theirs, rtol=1e-6 if point.dtype == "float32" else 1e-10)
    timed = {
        "plain": Method(plain),
        "plain_dnn": Method(plain_dnn),
        "norms": Method(lambda: per_example_norms(params, X, Y, net)),
        "gradients": Method(lambda: per_example_gradients(params, X, Y, net)),
        "jit": Method(lambda: jax.block_until_ready(jit_grad(jparams, jX, jY))),
        "jit_norms": Method(lambda: jax.block_until_ready(jit_norms(jparams, jX, jY))),
    }
    for method in timed.values():
        method.run()
    return timed


def table(rows: list[tuple[Point, dict[str, Times]]]) -> str:
    lines = [
        "| size | layers, m | dtype | plain | plain (DNN) | norms | per-example grads "
        "| jax jit grad | jax jit norms | norms/plain | norms/plain (DNN) | jax norms/grad "
        "| manual/jax norms | calls |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for point, t in rows:
        med = {name: times.median for name, times in t.items()}
        lines.append(
            f"| {point.size} | {point.layer_sizes}, {point.m} | {point.dtype} "
            f"| {format_time(med['plain'])} | {format_time(med['plain_dnn'])} "
            f"| {format_time(med['norms'])} | {format_time(med['gradients'])} "
            f"| {format_time(med['jit'])} | {format_time(med['jit_norms'])} "
            f"| {med['norms'] / med['plain']:.2f} | {med['norms'] / med['plain_dnn']:.2f} "
            f"| {med['jit_norms'] / med['jit']:.2f} | {med['norms'] / med['jit_norms']:.2f} "
            f"| {len(t['norms'].calls)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="medium", help="comma-separated: " + ",".join(SIZES))
    parser.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    parser.add_argument("--hidden", default="relu")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-sample", type=float, default=0.2)
    parser.add_argument("--min-calls", type=int, default=50)
    args = parser.parse_args(argv)
    sizes = [size.strip() for size in args.sizes.split(",") if size.strip()]
    unknown = [size for size in sizes if size not in SIZES]
    if unknown or not sizes:
        parser.error(f"--sizes: expected a comma-separated subset of {list(SIZES)}")
    print_environment("environment before")
    rows = []
    for size in sizes:
        point = Point(size, args.dtype, args.hidden)
        rows.append(
            (point, time_point(methods(point), args.rounds, args.min_sample, args.min_calls))
        )
    print(table(rows))
    for point, t in rows:
        ratio = t["norms"].median / t["plain"].median
        verdict = "met" if ratio <= GOAL else "NOT met"
        print(f"{point.size} {point.dtype}: norms/plain {ratio:.2f} (goal <= {GOAL}) -> {verdict}")
    print_environment("environment after")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
