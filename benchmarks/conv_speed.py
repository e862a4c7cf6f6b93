"""The convolution layer's speed: manual_bp's forward + backward against ``jax.jit``.

At a CIFAR-like size (N = 64 images, C = 3 -> F = 16 filters, 32x32, 3x3,
stride 1, padding 1), in one run, side by side:

* **manual**: ``manual_bp.convolution.forward`` then ``backward`` (NumPy, the
  default path, the default thread policy);
* **jax.jit, our definition**: ``jax.jit`` of ``jax.vjp`` of the same forward
  over ``jax.numpy`` (out and the three gradients);
* **jax.jit, lax.conv**: ``jax.jit`` of ``jax.vjp`` of ``lax.conv_general_dilated``
  (XLA's own convolution), the fastest jax way to the same numbers.

Each is timed as the best of ``--repeats`` rounds of ``--number`` calls; the
ratio is manual over the faster jax.  float64 and float32.

Usage (from the repository root)::

    python -m benchmarks.conv_speed
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks.conv_speed
"""

from __future__ import annotations

import argparse
import timeit

import numpy as np

from benchmarks.environment import print_environment
from manual_bp import convolution
from manual_bp_reference.jax_setup import jax, jnp

SHAPE = {"N": 64, "C": 3, "F": 16, "H": 32, "W": 32, "K": 3}


def _lax_conv(x, w, b):
    out = jax.lax.conv_general_dilated(
        x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NCHW", "OIHW", "NCHW")
    )
    return out + b[None, :, None, None]


@jax.jit
def _ours_vjp(x, w, b, dout):
    out, vjp = jax.vjp(lambda *a: convolution.forward(*a, stride=1, pad=1, xp=jnp)[0], x, w, b)
    return out, vjp(dout)


@jax.jit
def _lax_vjp(x, w, b, dout):
    out, vjp = jax.vjp(_lax_conv, x, w, b)
    return out, vjp(dout)


def measure(dtype: str, number: int, repeats: int) -> dict[str, float]:
    """Seconds per forward + backward, best round, for each of the three."""
    rng = np.random.default_rng(0)
    N, C, F, H, W, K = (SHAPE[k] for k in ("N", "C", "F", "H", "W", "K"))
    x = rng.normal(size=(N, C, H, W)).astype(dtype)
    w = rng.normal(size=(F, C, K, K)).astype(dtype)
    b = rng.normal(size=F).astype(dtype)
    dout = rng.normal(size=(N, F, H, W)).astype(dtype)

    def manual() -> object:
        _, cache = convolution.forward(x, w, b, stride=1, pad=1)
        return convolution.backward(dout, cache)

    args = tuple(jnp.asarray(a) for a in (x, w, b, dout))

    def ours() -> object:
        return jax.block_until_ready(_ours_vjp(*args))

    def lax() -> object:
        return jax.block_until_ready(_lax_vjp(*args))

    times = {}
    for name, run in (("manual", manual), ("jit_ours", ours), ("jit_lax", lax)):
        run()  # compile, warm the caches
        times[name] = min(timeit.repeat(run, number=number, repeat=repeats)) / number
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--number", type=int, default=20, help="calls per round")
    parser.add_argument("--repeats", type=int, default=7, help="rounds (the best is kept)")
    args = parser.parse_args(argv)
    if args.number < 1 or args.repeats < 1:
        parser.error("--number and --repeats: expected positive ints")
    print_environment()
    print(f"conv forward + backward, {SHAPE}, stride 1, pad 1; ms per call (best of "
          f"{args.repeats} x {args.number})")  # fmt: skip
    print(f"{'dtype':<8} {'manual':>8} {'jit ours':>9} {'jit lax':>8} {'manual / best jit':>18}")
    for dtype in ("float64", "float32"):
        t = measure(dtype, args.number, args.repeats)
        ratio = t["manual"] / min(t["jit_ours"], t["jit_lax"])
        print(f"{dtype:<8} {t['manual'] * 1e3:>8.2f} {t['jit_ours'] * 1e3:>9.2f} "
              f"{t['jit_lax'] * 1e3:>8.2f} {ratio:>18.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
