"""The Hessian's spectrum by Lanczos on hand-written Hessian-vector products, checked by jax.

The network is ``[2, 8, 8, 1]``, tanh, tanh, sigmoid with binary
cross-entropy on two moons (the batch as columns, ``X (2, m)``), P = 105
parameters, first trained briefly with Adam so the spectrum is that of a
trained net (a few large curvatures, many near 0, some negative).  The
parameters ``W1, B1, W2, ...`` are flattened into one vector ``θ`` of length
P (``flatten``; ``unflatten`` back), and ``H v`` is
``manual_bp.curvature.hessian_vector_product`` (Pearlmutter's R-operator)
of ``unflatten(v)``, flattened.

Lanczos with full reorthogonalisation, ``k`` iterations from a random unit
``q1``::

    w      = H q_j - β_(j-1) q_(j-1)
    α_j    = q_j^T w;   w = w - α_j q_j
    w      = w - Q (Q^T w)      twice: the q's stay orthogonal to rounding
    β_j    = ||w||;     q_(j+1) = w / β_j
    T_k    = tridiag(β, α, β)   (k, k);  its eigenvalues are the Ritz values

``k = P`` gives every eigenvalue of ``H`` (up to rounding); a smaller ``k``
finds the extreme ones first.  The check: ``jax.hessian`` of the same loss
(``network.batch_loss`` with ``xp=jax.numpy`` of ``unflatten(θ)``), a
``(P, P)`` matrix, its eigenvalues by ``np.linalg.eigvalsh``.  The script
prints the largest and smallest few of both and the worst difference
relative to the largest ``|eigenvalue|``, and draws the two spectra.

Run from the repository root::

    .venv/bin/python examples/hessian_spectrum.py                   # docs/hessian-spectrum.png
    .venv/bin/python examples/hessian_spectrum.py --k 30 --out /tmp/spectrum.png
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from manual_bp import Net, network
from manual_bp.curvature import hessian_vector_product
from manual_bp.data import two_moons
from manual_bp.optimizers import Adam

Array = np.ndarray
Params = dict[str, Array]

SIZES = [2, 8, 8, 1]
ACTIVATIONS = ["tanh", "tanh", "sigmoid"]
NET = Net.of(SIZES, ACTIVATIONS, loss="binary_cross_entropy")
SAMPLES = 200
NOISE = 0.15
SHOWN = 5  # the largest and smallest few printed
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "docs" / "hessian-spectrum.png"


# --- flat parameter vectors ----------------------------------------------------------------


def flatten(params: Params) -> Array:
    """``θ`` (P,): ``W1, B1, W2, B2, ...`` each raveled in row-major order."""
    return np.concatenate([np.ravel(params[key]) for key in params])


def unflatten(theta: Array, like: Params) -> Params:
    """The dict of ``like``'s keys and shapes from ``θ`` (P,); works on jax arrays too."""
    params, start = {}, 0
    for key, value in like.items():
        size = int(np.size(value))
        params[key] = theta[start : start + size].reshape(np.shape(value))
        start += size
    return params


# --- Lanczos -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lanczos:
    """``alpha`` (k,), ``beta`` (k-1,): the tridiagonal ``T_k``; ``ritz``: its eigenvalues."""

    alpha: Array
    beta: Array

    def ritz(self, k: int | None = None) -> Array:
        """The eigenvalues of ``T_k`` (the first ``k`` iterations), ascending."""
        k = len(self.alpha) if k is None else k
        T = (
            np.diag(self.alpha[:k])
            + np.diag(self.beta[: k - 1], 1)
            + np.diag(self.beta[: k - 1], -1)
        )
        return np.linalg.eigvalsh(T)


def lanczos(matvec: Callable[[Array], Array], size: int, k: int, seed: int = 0) -> Lanczos:
    """``k`` Lanczos iterations on the symmetric ``v -> matvec(v)`` of ``(size,)`` vectors,
    with full reorthogonalisation; stops early at an invariant subspace (``β_j ≈ 0``)."""
    Q = np.zeros((k + 1, size))  # rows q_1 .. q_(k+1)
    q = np.random.default_rng(seed).standard_normal(size)
    Q[0] = q / np.linalg.norm(q)
    alpha: list[float] = []
    beta: list[float] = []
    for j in range(k):
        w = matvec(Q[j])
        if j > 0:
            w = w - beta[-1] * Q[j - 1]
        alpha.append(float(Q[j] @ w))
        w = w - alpha[-1] * Q[j]
        for _ in range(2):  # twice is enough (Kahan, Parlett)
            w = w - Q[: j + 1].T @ (Q[: j + 1] @ w)
        norm = float(np.linalg.norm(w))
        if j == k - 1 or norm <= 1e-12 * max(abs(a) for a in alpha):
            break
        beta.append(norm)
        Q[j + 1] = w / norm
    return Lanczos(np.array(alpha), np.array(beta))


# --- the net, the product and the oracle ---------------------------------------------------


def trained(steps: int, seed: int) -> tuple[Params, Array, Array]:
    """The moons and the net's parameters after ``steps`` full-batch Adam steps."""
    X, Y = two_moons(SAMPLES, noise=NOISE, seed=seed)
    params = network.init_params(SIZES, ACTIVATIONS, seed=seed)
    adam = Adam(learning_rate=0.05)
    state = adam.init(params)
    for _ in range(steps):
        grads = network.backward(network.forward(params, X, NET)[1], Y, NET)
        params, state = adam.update({key: grads[key] for key in params}, state, params)
    return params, X, Y


def hessian_matvec(params: Params, X: Array, Y: Array) -> Callable[[Array], Array]:
    """``v -> flatten(H unflatten(v))`` by ``manual_bp.curvature.hessian_vector_product``."""
    return lambda v: flatten(hessian_vector_product(params, X, Y, NET, unflatten(v, params)))


def jax_hessian(params: Params, X: Array, Y: Array) -> Array:
    """``jax.hessian`` of the same batch loss in ``θ``, ``(P, P)``, float64."""
    from manual_bp_reference.jax_setup import jax, jnp

    def loss(theta: Array) -> Array:
        return network.batch_loss(unflatten(theta, params), X, Y, NET, xp=jnp)

    return np.asarray(jax.jit(jax.hessian(loss))(jnp.asarray(flatten(params))))


# --- the run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """The exact eigenvalues (jax), the Ritz values, the Lanczos record, the figure."""

    eigenvalues: Array  # (P,), ascending
    ritz: Array  # (k,), ascending
    lanczos: Lanczos
    out: Path
    seconds: float

    @property
    def top_relative_difference(self) -> float:
        """``max |ritz - eig| / max |eig|`` over the ``SHOWN`` largest of each."""
        n = min(SHOWN, len(self.ritz))
        scale = float(np.max(np.abs(self.eigenvalues)))
        return float(np.max(np.abs(self.ritz[-n:] - self.eigenvalues[-n:])) / scale)

    @property
    def all_relative_difference(self) -> float | None:
        """``max |ritz - eig| / max |eig|`` over the whole spectrum (``k = P`` only)."""
        if len(self.ritz) != len(self.eigenvalues):
            return None
        scale = float(np.max(np.abs(self.eigenvalues)))
        return float(np.max(np.abs(self.ritz - self.eigenvalues)) / scale)


def run(k: int | None, steps: int, seed: int, out: Path) -> Run:
    """Train, Lanczos for ``k`` iterations (``None``: P), compare with jax, draw."""
    start = time.perf_counter()
    params, X, Y = trained(steps, seed)
    P = flatten(params).size
    k = P if k is None else min(k, P)
    print(
        f"net {SIZES} {'/'.join(ACTIVATIONS)} on two moons (m = {SAMPLES}), "
        f"{steps} Adam steps; P = {P} parameters"
    )
    record = lanczos(hessian_matvec(params, X, Y), P, k, seed=seed)
    ritz = record.ritz()
    eigenvalues = np.linalg.eigvalsh(jax_hessian(params, X, Y))
    print(
        f"Lanczos: {len(ritz)} iterations (of k = {k}) on manual_bp's H v, full reorthogonalisation"
    )
    n = min(SHOWN, len(ritz))
    print(f"largest {n}:   jax.hessian  " + "  ".join(f"{v: .6e}" for v in eigenvalues[-n:][::-1]))
    print("              Lanczos      " + "  ".join(f"{v: .6e}" for v in ritz[-n:][::-1]))
    print(f"smallest {n}:  jax.hessian  " + "  ".join(f"{v: .6e}" for v in eigenvalues[:n]))
    print("              Lanczos      " + "  ".join(f"{v: .6e}" for v in ritz[:n]))
    result = Run(eigenvalues, ritz, record, out, 0.0)
    print(f"largest {n}: max |Lanczos - jax| / max |eig| = {result.top_relative_difference:.1e}")
    if result.all_relative_difference is not None:
        print(f"all {P}: max |Lanczos - jax| / max |eig| = {result.all_relative_difference:.1e}")
    draw(result, out)
    shown = out.resolve()
    print(f"wrote {shown.relative_to(Path.cwd()) if shown.is_relative_to(Path.cwd()) else shown}")
    return Run(eigenvalues, ritz, record, out, time.perf_counter() - start)


# --- the figure ----------------------------------------------------------------------------


def draw(result: Run, out: Path) -> None:
    """Left: both spectra by sorted index (symlog y).  Right: how fast the extreme
    Ritz values converge, their error against jax's by iteration."""
    from matplotlib.figure import Figure  # no pyplot: no global state, headless (Agg)

    eig, ritz = result.eigenvalues, result.ritz
    P, k = len(eig), len(ritz)
    scale = float(np.max(np.abs(eig)))
    fig = Figure(figsize=(12, 4.8))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.3, 1]})
    left.plot(np.arange(P), eig, "o", color="tab:blue", markersize=6, label="jax.hessian, eigvalsh")
    # Ritz values at the ends of the index axis: the extremes converge first.
    below = int(np.sum(ritz < 0))
    index = np.concatenate([np.arange(below), P - (k - below) + np.arange(k - below)])
    left.plot(
        index, ritz, "x", color="tab:red", markersize=6, label=f"Lanczos Ritz values (k = {k})"
    )
    linear = max(1e-6 * scale, 1e-12)
    left.set_yscale("symlog", linthresh=linear, linscale=2)
    left.axhline(0, color="gray", linewidth=0.8)
    left.set_xlabel("eigenvalue index (ascending)")
    left.set_ylabel(f"eigenvalue (symlog, linear within ±{linear:.0e})")
    left.set_title(f"Hessian spectrum, P = {P} parameters", fontsize=11)
    left.legend(fontsize=9, loc="upper left")

    iterations = range(1, k + 1)
    top_error = [abs(result.lanczos.ritz(j)[-1] - eig[-1]) / scale for j in iterations]
    low_error = [abs(result.lanczos.ritz(j)[0] - eig[0]) / scale for j in iterations]
    floor = np.finfo(float).eps
    right.semilogy(
        iterations, np.maximum(top_error, floor), color="tab:red", label="largest eigenvalue"
    )
    right.semilogy(
        iterations, np.maximum(low_error, floor), color="tab:purple", label="smallest eigenvalue"
    )
    right.set_xlabel("Lanczos iteration j")
    right.set_ylabel("|Ritz value − jax eigenvalue| / max|eig|")
    right.set_title("the extremes converge first", fontsize=11)
    right.legend(fontsize=9)
    fig.suptitle(
        f"Hessian of the loss of a {SIZES} tanh net on two moons: Lanczos on manual_bp's "
        "H v vs jax.hessian",
        fontsize=12,
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)


# --- the command line ----------------------------------------------------------------------


def _int(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an int >= {minimum}, got {text!r}"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an int >= {minimum}, got {value}")
        return value

    return parse


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hessian_spectrum.py",
        description="Lanczos on manual_bp's Hessian-vector products of a small trained net, "
        "compared with the eigenvalues of jax.hessian.",
    )
    parser.add_argument(
        "--k", type=_int(1), default=None, help="Lanczos iterations (default: P, every eigenvalue)"
    )
    parser.add_argument("--steps", type=_int(0), default=300, help="Adam steps first (default 300)")
    parser.add_argument("--seed", type=_int(0), default=0, help="data, weights, q1 (default 0)")
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="the PNG to write (default: docs/hessian-spectrum.png in the repository)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> Run:
    """Parse the flags (exit 2 on a bad one) and run."""
    cli = parser()
    args = cli.parse_args(argv)
    out: Path = args.out
    if out.suffix.lower() != ".png":
        cli.error(f"argument --out: expected a path ending in .png, got {str(out)!r}")
    if not out.parent.is_dir():
        cli.error(f"argument --out: expected an existing folder, got {str(out.parent)!r}")
    return run(args.k, args.steps, args.seed, out)


if __name__ == "__main__":
    result = main()
    print(f"{result.seconds:.1f} s")
    sys.exit(0)
