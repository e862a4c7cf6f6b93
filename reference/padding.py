"""Zero padding to bucket sizes: one compiled oracle serves many shapes.

``jax.jit`` compiles once for every new combination of array shapes and
static arguments, which costs thousands of times what the compiled gradient
of a small network then takes to run (``benchmarks/RESULTS.md``).  A property that draws a random
architecture per example therefore spends nearly all its time compiling.
Here every case is embedded in a fixed *bucket* shape, so that one compiled
function serves every network of that bucket:

* every width ``n0..nL`` is padded with zeros to ``N``, the batch ``m`` to
  ``M`` (powers of two, at least ``MIN_WIDTH`` and ``MIN_BATCH``);
* the depth is padded to ``D`` by identity layers in front (``W = I``,
  ``B = 0``, ``f = identity``), which pass ``A0`` through unchanged;
* the layers are one ``lax.scan`` step each, and the activation of each
  layer and the loss are chosen at run time with ``lax.switch`` among
  manual_bp's own ``ACTIVATIONS[name].forward`` and ``LOSSES[name].value``.

Why the padded computation gives the unpadded numbers
-----------------------------------------------------
Every padded quantity either is never read by a real one, or enters a real
sum as an exact zero, and ``x + 0 = x`` exactly:

* padded hidden units have zero rows in ``Wl`` and ``Bl``, so ``Zl = 0`` and
  ``Al = f(0)`` there (finite; 0.5 for sigmoid), and zero columns in
  ``W(l+1)``, so they add ``0 * f(0) = 0`` to every real ``Z(l+1)``;
* a softmax normalises over its column, so its padded rows are set to
  ``-MASKED_LOGIT`` first: ``exp`` of them is exactly 0;
* padded batch columns (``X`` a copy of the first sample, so every value
  computed there is finite wherever the real ones are; ``Y = 0``) are masked
  out of the loss:
  the loss sees ``Z = -MASKED_LOGIT`` and ``A = 0`` there, where every loss
  term is exactly 0 (``0 * softplus(huge)``, ``softplus(-huge)``,
  ``(0 - 0)^2``, ``0 * log_softmax``), so their gradient is exactly 0 and they
  add exact zeros to ``dWl = dZl A(l-1)^T`` and ``dBl``;
* the identity layers compute ``I A = A`` exactly (one product by 1, the rest
  by 0) and pass ``dA`` back as ``I^T dZ = dZ`` exactly;
* every loss divides its sum by ``Y.shape[1] = M``; the padded loss is
  multiplied back by ``M / m`` as ``(value * M) / m``.  With ``M`` a power of
  two, ``value * M`` recovers the sum exactly, so the result is the sum
  divided by the true ``m``, rounded once, as unpadded, and its gradient
  ``fl(1/m)`` reaches the sum unchanged (``* M`` and ``/ M`` are exact).

Normalization (``manual_bp.normalization``) is one more ``lax.switch`` per
layer (none, batch, layer), with ``gammal``, ``betal`` stacked (zero for
padded units) and its statistics masked:

* batch normalization sums each unit over the *real* columns only and divides
  by the true ``m``, so padded columns (finite copies of the first sample)
  never enter ``mul`` or ``varl``; their loss is masked, so their ``dNl`` is
  exactly 0 and they add exact zeros to ``dgammal``, ``dbetal``;
* layer normalization sums each sample over the *real* units only and divides
  by the true ``nl``; padded units get ``Nl = 0 * Zhatl + 0 = 0`` and meet
  zero columns of ``W(l+1)``.

Dropout (``manual_bp.dropout``) is ``Al = (Fl ⊙ Ml) / keepl`` after the
activation, with the masks stacked (D, N, M) and ``keepl = 1 − pl``: padded
units, padded columns, the identity layers and layers without dropout get
mask 1 and ``keep = 1``, and ``(F ⊙ 1) / 1 = F`` exactly, so those masks
change nothing; a real dropped entry takes the case's own mask and the same
two operations as ``forward_xp``.  Without dropout no mask is compiled.

The masked sums run in another order than ``mean`` does, so these agree to
rounding, not bitwise (``property_tests/test_padded_oracle.py``).

The masked logit is finite, not ``-inf``: ``0 * log_softmax(-inf)`` would be
``0 * -inf = nan`` in the loss, and ``jax.grad`` through ``where`` would carry
that ``nan`` into real entries.  Finite, it needs every real ``|Z|`` far below
``MASKED_LOGIT``; the strategies' ``|ZL|`` stays below about ``1e17``.

What may still differ is the order in which XLA sums a padded dot product or
reduction; ``property_tests/test_padded_oracle.py`` measures the agreement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from manual_bp.activations import ACTIVATIONS
from manual_bp.losses import LOSSES
from manual_bp.normalization import EPS
from manual_bp_reference.cases import Case
from manual_bp_reference.jax_setup import jax, jnp

# Widths and batch sizes are padded to powers of two from these minimums up
# (a power of two for the batch makes the loss's rescaling exact), the depth
# to a multiple of DEPTH_STEP.
MIN_WIDTH = 32
MIN_BATCH = 64
DEPTH_STEP = 4
# The scan over layers unrolled: less time per call for the same compile time
# (benchmarks/RESULTS.md).
UNROLL = True
# Above these the oracle compiles the case's own shapes: a bucket would
# multiply the arithmetic and memory (784 pads to 1024), while one compile
# is small next to checking a network that size.
MAX_PADDED_WIDTH = 64
MAX_PADDED_BATCH = 256
# exp(-1e300 - z) is exactly 0 for every real logit z, and 0 * 1e300 is 0.
MASKED_LOGIT = 1e300

ACTIVATION_NAMES = tuple(sorted(ACTIVATIONS))
LOSS_NAMES = tuple(sorted(LOSSES))
_IDENTITY = ACTIVATION_NAMES.index("identity")
# The normalization switch's branches: code 0 none, 1 batch, 2 layer.
NORMALIZATION_CODES = (None, "batch", "layer")


def depth_bucket(depth: int) -> int:
    """``depth`` rounded up to a multiple of ``DEPTH_STEP``.

    >>> depth_bucket(1), depth_bucket(4), depth_bucket(5)
    (4, 4, 8)
    """
    return -(-depth // DEPTH_STEP) * DEPTH_STEP


def bucket(size: int, minimum: int) -> int:
    """The smallest power of two that is ``>= size`` and ``>= minimum``.

    >>> bucket(3, 32), bucket(33, 32), bucket(64, 32)
    (32, 64, 64)
    """
    return max(minimum, 1 << (size - 1).bit_length())


@dataclass(frozen=True)
class Bucket:
    """Padded sizes: width ``N`` of every layer, batch ``M``, depth ``D``."""

    width: int
    batch: int
    depth: int

    @classmethod
    def for_case(cls, layer_sizes: Sequence[int], m: int) -> Bucket:
        return cls(
            bucket(max(layer_sizes), MIN_WIDTH),
            bucket(m, MIN_BATCH),
            depth_bucket(len(layer_sizes) - 1),
        )


def worth_padding(layer_sizes: Sequence[int], m: int) -> bool:
    """Pad the small cases that property tests draw by the thousand; compile
    the large ones as they are.

    >>> worth_padding([2, 3, 3, 1], 8), worth_padding([784, 512, 10], 8)
    (True, False)
    """
    return max(layer_sizes) <= MAX_PADDED_WIDTH and m <= MAX_PADDED_BATCH


def zero_padded(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``array`` in the top-left corner of float64 zeros of ``shape``."""
    out = np.zeros(shape)
    out[tuple(slice(0, n) for n in np.shape(array))] = array
    return out


def padded_inputs(X: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """``X`` (n0, m) in float64 ``(rows, columns)``, its padded columns copies of
    its first sample: their forward values are finite wherever the real ones
    are, so the exact zeros they send back through ``dWl = dZl A(l-1)^T``
    never meet an inf (``0 * inf`` would be nan)."""
    out = zero_padded(X, (rows, columns))
    out[: X.shape[0], X.shape[1] :] = np.asarray(X, dtype=np.float64)[:, :1]
    return out


@dataclass(frozen=True)
class PaddedCase:
    """A case embedded in its bucket, as arrays for the compiled oracle.

    ``W`` (D, N, N), ``B`` (D, N, 1), ``X`` (N, M), ``Y`` (N, M); layer ``l``
    of the case is entry ``offset + l - 1`` of the stacks, ``offset = D - L``,
    and the entries before it are identity layers.  ``widths`` (D,) holds the
    true ``nl`` of every entry and ``codes`` (D,) its activation's index in
    ``ACTIVATION_NAMES``; ``gamma``, ``beta`` (D, N, 1) and ``norm_codes``
    (D,) the normalization of every entry (``NORMALIZATION_CODES``).
    """

    W: np.ndarray
    B: np.ndarray
    X: np.ndarray
    Y: np.ndarray
    codes: np.ndarray
    widths: np.ndarray
    loss_code: int
    m: int
    offset: int
    gamma: np.ndarray
    beta: np.ndarray
    norm_codes: np.ndarray
    masks: np.ndarray | None = None
    keep: np.ndarray | None = None


def pad_masks(case: Case, size: Bucket) -> tuple[np.ndarray, np.ndarray]:
    """The stacked masks (D, N, M) and keep probabilities (D,) of a case with
    dropout: the case's ``Ml`` in its corner, 1 everywhere else."""
    offset, sizes = size.depth - case.depth, case.layer_sizes
    masks = np.ones((size.depth, size.width, size.batch))
    keep = np.ones(size.depth)
    for key, mask in case.masks.items():
        l = int(key[1:])
        masks[offset + l - 1, : sizes[l], : case.m] = mask
        keep[offset + l - 1] = 1 - case.dropout[l - 1]
    return masks, keep


def pad_case(case: Case) -> PaddedCase:
    """Embed a network and batch in its bucket, in float64 (an exact cast)."""
    params, X, Y, activations = case.params, case.X, case.Y, case.activations
    depth, m, sizes = case.depth, case.m, case.layer_sizes
    size = Bucket.for_case(sizes, m)
    N, offset = size.width, size.depth - depth
    W = np.zeros((size.depth, N, N))
    W[:offset] = np.eye(N)
    B = np.zeros((size.depth, N, 1))
    for l in range(1, depth + 1):
        n, n_prev = sizes[l], sizes[l - 1]
        W[offset + l - 1, :n, :n_prev] = params[f"W{l}"]
        B[offset + l - 1, :n] = params[f"B{l}"]
    codes = np.full(size.depth, _IDENTITY, dtype=np.int32)
    codes[offset:] = [ACTIVATION_NAMES.index(name) for name in activations]
    widths = np.full(size.depth, N, dtype=np.int32)
    widths[offset:] = sizes[1:]
    X_padded = padded_inputs(X, N, size.batch)
    gamma, beta = np.zeros((size.depth, N, 1)), np.zeros((size.depth, N, 1))
    norm_codes = np.zeros(size.depth, dtype=np.int32)
    for l, kind in enumerate(case.normalization, start=1):
        if kind:
            gamma[offset + l - 1, : sizes[l]] = params[f"gamma{l}"]
            beta[offset + l - 1, : sizes[l]] = params[f"beta{l}"]
            norm_codes[offset + l - 1] = NORMALIZATION_CODES.index(kind)
    masks, keep = pad_masks(case, size) if case.dropout else (None, None)
    return PaddedCase(
        W,
        B,
        X_padded,
        zero_padded(Y, (N, size.batch)),
        codes,
        widths,
        LOSS_NAMES.index(case.loss),
        m,
        offset,
        gamma,
        beta,
        norm_codes,
        masks,
        keep,
    )


def _activation(name: str):
    """``f(Z)`` for one switch branch; softmax first masks its padded rows."""
    forward = ACTIVATIONS[name].forward

    def apply(Z, rows):
        if name == "softmax":
            Z = jnp.where(rows, Z, -MASKED_LOGIT)
        return forward(Z, jnp)

    return apply


def masked_loss(name: str):
    """The batch mean over the true ``m``, from ``LOSSES[name].value`` over ``M``:
    ``apply(Z, A, Y, mask, m)`` reads ``Z`` and ``A`` only where ``mask``."""
    value = LOSSES[name].value

    def apply(Z, A, Y, mask, m):
        # The losses are typed for NumPy arrays and run on jax ones through xp.
        Z_real, A_real = jnp.where(mask, Z, -MASKED_LOGIT), jnp.where(mask, A, 0.0)
        total = value(Z_real, A_real, Y, jnp)  # type: ignore[arg-type]
        return total * Y.shape[1] / m

    return apply


def _masked_statistics(Z, mask, count, axis, tap_mu, tap_var):
    """``mu``, ``var`` (two passes) of ``Z`` over ``axis``, summing only where ``mask``."""
    mu = jnp.sum(jnp.where(mask, Z, 0.0), axis=axis, keepdims=True) / count + tap_mu
    D = Z - mu
    var = jnp.sum(jnp.where(mask, D * D, 0.0), axis=axis, keepdims=True) / count + tap_var
    return D, var


def _normalization(kind):
    """One branch of the normalization switch: ``N = gamma Zhat + beta`` (+ taps).

    The taps of ``mu`` and ``var`` are (N, M) arrays; batch normalization uses
    their first column (``(N, 1)``, one per unit), layer normalization their
    first row (``(1, M)``, one per sample).
    """

    def apply(Z, gamma, beta, width, m, taps):
        tap_mu, tap_var, tap_Zhat, tap_N = taps
        if kind is None:
            return Z
        if kind == "batch":
            columns = jnp.arange(Z.shape[1])[None, :] < m
            D, var = _masked_statistics(Z, columns, m, 1, tap_mu[:, :1], tap_var[:, :1])
        else:
            rows = jnp.arange(Z.shape[0])[:, None] < width
            count = width.astype(Z.dtype)
            D, var = _masked_statistics(Z, rows, count, 0, tap_mu[:1, :], tap_var[:1, :])
        Zhat = D * (1 / jnp.sqrt(var + EPS)) + tap_Zhat
        return gamma * Zhat + beta + tap_N

    return apply


def _padded_forward(W, B, X, codes, widths, taps, norm, dropout=None):
    """The forward pass over the stacks: one ``lax.scan`` step per layer.

    ``Zl = Wl A(l-1) + Bl + tap``, ``Nl`` the normalization (``norm``: the
    stacked ``gamma``, ``beta``, ``norm_codes`` and the true ``m``),
    ``Al = f_l(Nl) + tap``, as in ``manual_bp.network.forward``.  ``taps``
    (6, D, N, M) stacks the taps of ``Z``, ``A``, ``mu``, ``var``, ``Zhat``,
    ``N`` ((2, D, N, M), ``Z`` and ``A`` only, without normalization: ``Nl =
    Zl`` and no switch is compiled).  ``dropout``: the stacked masks and keep
    probabilities (``pad_masks``), or None.  Returns ``(A_L, Z)`` with ``Z``
    (D, N, M) the stacked ``Zl``.
    """
    gamma, beta, norm_codes, m = norm
    branches = [_activation(name) for name in ACTIVATION_NAMES]
    norm_branches = [_normalization(kind) for kind in NORMALIZATION_CODES]
    units = jnp.arange(X.shape[0])[:, None]

    def layer(A_prev, inputs):
        W_l, B_l, code, width, tap, gamma_l, beta_l, norm_code, *dropped = inputs
        Z = W_l @ A_prev + B_l + tap[0]
        N = Z
        if tap.shape[0] > 2:
            N = jax.lax.switch(norm_code, norm_branches, Z, gamma_l, beta_l, width, m, tap[2:])
        A = jax.lax.switch(code, branches, N, units < width)
        if dropped:
            # manual_bp.dropout.apply with the division by keep = 1 − p, computed
            # once in float64 (pad_masks) as apply computes it.
            mask, keep = dropped
            A = (A * mask) / keep
        return A + tap[1], Z

    stacks = (W, B, codes, widths, jnp.moveaxis(taps, 0, 1), gamma, beta, norm_codes)
    if dropout is not None:
        stacks = (*stacks, *dropout)
    return jax.lax.scan(layer, X, stacks, unroll=UNROLL)


def _padded_loss(Z_L, A_L, Y, loss_code, width, m):
    """The loss of the true ``nL x m`` corner, chosen by ``loss_code``."""
    mask = (jnp.arange(Y.shape[0])[:, None] < width) & (jnp.arange(Y.shape[1])[None, :] < m)
    branches = [masked_loss(name) for name in LOSS_NAMES]
    return jax.lax.switch(loss_code, branches, Z_L, A_L, Y, mask, m)


@partial(jax.jit, static_argnames=("normalized",))
def _padded_value_and_grads(
    W, B, X, Y, codes, widths, loss_code, m, gamma, beta, norm_codes, normalized, dropout=None
):
    """Loss, stacked ``Z`` and the gradients w.r.t. ``(W, B, taps, X, gamma, beta)``.

    ``normalized=False`` compiles no normalization step: an unnormalized
    bucket compiles as fast as before normalization existed; ``dropout=None``
    (no masks) compiles no mask."""
    taps = jnp.zeros((6 if normalized else 2, *W.shape[:1], *X.shape))

    def objective(W, B, taps, X, gamma, beta):
        norm = (gamma, beta, norm_codes, m)
        A_L, Z = _padded_forward(W, B, X, codes, widths, taps, norm, dropout)
        return _padded_loss(Z[-1], A_L, Y, loss_code, widths[-1], m), Z

    (value, Z), grads = jax.value_and_grad(objective, argnums=(0, 1, 2, 3, 4, 5), has_aux=True)(
        W, B, taps, X, gamma, beta
    )
    return value, Z, grads


def padded_oracle(case: Case) -> tuple[float, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(loss, grads, Z)`` of the case, through its bucket's compiled function.

    ``grads`` has ``Wl``, ``Bl``, ``Zl`` (l = 1..L), ``Al`` (l = 1..L-1) and
    ``A0`` (and a normalized layer's ``gammal``, ``betal``, ``mul``, ``varl``,
    ``Zhatl``, ``Nl``), sliced back to the true shapes; ``Z`` has the forward
    ``Zl``.
    """
    padded = pad_case(case)
    result = _padded_value_and_grads(
        padded.W,
        padded.B,
        padded.X,
        padded.Y,
        padded.codes,
        padded.widths,
        padded.loss_code,
        float(padded.m),
        padded.gamma,
        padded.beta,
        padded.norm_codes,
        normalized=bool(case.normalization),
        dropout=None if padded.masks is None else (padded.masks, padded.keep),
    )
    value, Z, (dW, dB, d_taps, dX, d_gamma, d_beta) = jax.device_get(result)
    m, sizes = case.m, case.layer_sizes
    grads = {"A0": dX[: sizes[0], :m]}
    Zs = {}
    for l in range(1, case.depth + 1):
        i, n, n_prev = padded.offset + l - 1, sizes[l], sizes[l - 1]
        grads[f"W{l}"] = dW[i, :n, :n_prev]
        grads[f"B{l}"] = dB[i, :n]
        grads[f"Z{l}"] = d_taps[0, i, :n, :m]
        if l < case.depth:
            grads[f"A{l}"] = d_taps[1, i, :n, :m]
        Zs[f"Z{l}"] = Z[i, :n, :m]
        kind = case.normalization[l - 1] if case.normalization else None
        if kind:
            grads[f"gamma{l}"], grads[f"beta{l}"] = d_gamma[i, :n], d_beta[i, :n]
            rows, columns = (n, 1) if kind == "batch" else (1, m)
            grads[f"mu{l}"], grads[f"var{l}"] = (d_taps[k, i, :rows, :columns] for k in (2, 3))
            grads[f"Zhat{l}"], grads[f"N{l}"] = (d_taps[k, i, :n, :m] for k in (4, 5))
    return float(value), grads, Zs
