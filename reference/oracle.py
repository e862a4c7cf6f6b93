"""The oracle: ``jax.grad`` of manual_bp's own forward function, in float64.

``manual_bp.network.forward_xp`` and the losses are written over an array
namespace; the oracle calls them with ``jax.numpy``.  To obtain dL/dZl and
dL/dAl, the forward adds zero "taps" to every ``Zl`` (l = 1..L) and ``Al``
(l = 1..L-1) (``manual_bp.architecture.tap_shapes``); the gradient with
respect to a tap is the gradient with respect to the variable it is added to.
``A0`` is the gradient with respect to ``X`` itself.

Whatever the dtype of the manual computation, the oracle casts the same
values (exactly) to float64 and differentiates there.

``jax.jit`` compiles once per shape, and a compile costs thousands of calls,
so how a case is compiled (``compiled=``) is chosen by what it will serve:

* ``"network"``: the case's own network, ``forward_xp`` itself, with only the
  batch padded to a power of two (the padded columns masked out of the loss,
  as ``padding`` masks them): one compile serves every batch of up to 64 (then
  128, 256) samples of that network.  This is what a check of one network
  (``check_gradients``, ``manual-bp compare``) needs: it compiles in about a
  tenth of a bucket's time (``benchmarks/RESULTS.md``).  Batch normalization
  couples the columns, so a net with it is never compiled this way.
* ``"bucket"``: ``manual_bp_reference.padding``, one compile for every network
  of a bucket shape (the same activations and losses in a ``lax.scan``),
  which is what properties and campaigns that draw thousands of
  architectures need.
* ``"exact"``: the case's own shapes, one compile per network and batch size:
  large cases, which a bucket would multiply.
* ``None`` (the default) chooses: large cases exact; a small one by its
  bucket, or by its network inside ``one_network()``, which a caller that
  runs one network (a check, a demo, a one-network campaign) opens.  The
  crossover: a network compiles in a fifth of a bucket's time, so past about
  five networks the bucket is cheaper (``benchmarks/RESULTS.md``).  The
  choice depends on the caller's intent, never on what the process ran
  before, so the same case gives the same numbers in any process.

``property_tests/test_padded_oracle.py`` proves the three agree.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from manual_bp.architecture import param_shapes, tap_shapes
from manual_bp.net import Net
from manual_bp.network import forward_xp, loss_from_cache
from manual_bp_reference.cases import Case
from manual_bp_reference.jax_setup import jax, jnp
from manual_bp_reference.padding import (
    MIN_BATCH,
    bucket,
    masked_loss,
    padded_inputs,
    padded_oracle,
    worth_padding,
    zero_padded,
)

COMPILED = ("network", "bucket", "exact")
# Inside one_network(): small cases compiled by their network.
_one_network: ContextVar[bool] = ContextVar("one_network", default=False)
# Compilations started ahead (compile_ahead), waited for before their first use.
_ahead: dict[Net, threading.Thread] = {}


@dataclass(frozen=True)
class OracleResult:
    """The float64 loss and its gradients, keyed as ``manual_bp`` keys them.

    ``Z`` holds the oracle's own forward ``Zl``: where one lies on the other
    side of a kink than the manual ``Zl``, the two sides legitimately take
    different one-sided derivatives.
    """

    loss: float
    grads: dict[str, np.ndarray]
    Z: dict[str, np.ndarray]


@partial(jax.jit, static_argnames=("net",))
def _value_and_grads(params, X, Y, net, masks=None, m=None):
    """Loss, forward ``Zl`` and the gradients w.r.t. ``(params, taps, X)``.

    ``m=None``: every column of ``X`` is a sample (the case's own shapes).
    Else the batch is padded to ``M = X.shape[1]`` columns of which the first
    ``m`` are real: the loss reads ``ZL`` and ``AL`` only there
    (``padding.masked_loss``), so the padded columns add exact zeros to every
    gradient, and ``m`` being an argument, one compile serves every ``m``.
    """
    depth = net.depth
    shapes = tap_shapes(net.layer_sizes, X.shape[1], normalization=net.normalization)
    taps = {key: jnp.zeros(shape) for key, shape in shapes.items()}

    def objective(params, taps, X):
        # The case's own masks: inputs, not differentiated.
        _, cache = forward_xp(params, X, net, xp=jnp, taps=taps, masks=masks)
        Zs = {f"Z{l}": cache[f"Z{l}"] for l in range(1, depth + 1)}
        if m is None:
            return loss_from_cache(cache, Y, net.loss, depth, xp=jnp), Zs
        columns = jnp.arange(X.shape[1])[None, :] < m
        return masked_loss(net.loss)(cache[f"Z{depth}"], cache[f"A{depth}"], Y, columns, m), Zs

    (value, Zs), grads = jax.value_and_grad(objective, argnums=(0, 1, 2), has_aux=True)(
        params, taps, X
    )
    return value, Zs, grads


def compile_ahead(net: Net, *, m: int = 1) -> None:
    """Compile ``net``'s oracle (``"network"``, batches up to ``m``) in a
    background thread, where XLA runs without the GIL: a check starts it as
    soon as it knows its network, and the compile overlaps the child process's
    start and the first calls of the user's code.  The first oracle call of
    that network waits for it; nothing else changes (a compile that fails is
    repeated, and so raised, by that call)."""
    net = replace(net, l2=0.0)
    if net in _ahead or choose_compiled(net, m) != "network":
        return
    shapes = param_shapes(net.layer_sizes, normalization=net.normalization)
    params = {key: np.zeros(shape) for key, shape in shapes.items()}
    X, Y = np.zeros((net.layer_sizes[0], m)), np.zeros((net.layer_sizes[-1], m))
    masks = {f"M{l}": np.ones((layer.units, m)) for l, layer in enumerate(net.layers, 1)
             if layer.dropout}  # fmt: skip
    case = Case(net, params, X, Y, masks=masks)

    def compile_() -> None:
        with contextlib.suppress(Exception):  # the first real call raises it again
            _network_oracle(case, net)

    thread = threading.Thread(target=compile_, name="manual-bp compile ahead", daemon=True)
    _ahead[net] = thread
    thread.start()


def _network_oracle(case: Case, net: Net) -> tuple[float, dict, dict]:
    """``(loss, grads, Z)`` through ``_value_and_grads`` of the batch padded to
    ``M`` columns, sliced back to the case's ``m`` (``A0`` included)."""
    ahead = _ahead.get(net)
    if ahead is not None and ahead is not threading.current_thread():
        ahead.join()
        _ahead.pop(net, None)
    m, M = case.m, bucket(case.m, MIN_BATCH)
    X = padded_inputs(case.X, case.layer_sizes[0], M)
    Y = zero_padded(case.Y, (case.layer_sizes[-1], M))
    params = {key: np.asarray(value, dtype=np.float64) for key, value in case.params.items()}
    masks = {key: np.ones((mask.shape[0], M)) for key, mask in case.masks.items()}
    for key, mask in case.masks.items():
        masks[key][:, :m] = mask
    result = _value_and_grads(params, X, Y, net, masks=masks or None, m=float(m))
    value, Zs, (d_params, d_taps, d_X) = jax.device_get(result)
    grads = {**d_params, **{key: tap[:, :m] for key, tap in d_taps.items()}}
    grads["A0"] = d_X[:, :m]
    return float(value), grads, {key: Z[:, :m] for key, Z in Zs.items()}


@contextlib.contextmanager
def one_network() -> Iterator[None]:
    """Within the block, small cases are compiled by their network (one
    compile of about 0.3 s serves every batch of it) instead of their bucket
    (1.7 s, serving every network of its shape): for a caller that runs one
    network, or a few.  A compile started ahead in the block
    (``compile_ahead``) has ended when the block ends: a process never exits
    with XLA compiling in a thread (which aborts it)."""
    token = _one_network.set(True)
    try:
        yield
    finally:
        _one_network.reset(token)
        finish_ahead()


@atexit.register
def finish_ahead() -> None:
    """Wait for the compiles started ahead (at exit too)."""
    for net, thread in list(_ahead.items()):
        thread.join()
        _ahead.pop(net, None)


def choose_compiled(net: Net, m: int) -> str:
    """How ``oracle_gradients`` compiles a case of ``net`` and ``m`` samples by
    default (``compiled=None``): see the module's docstring."""
    if not worth_padding(net.layer_sizes, m):
        return "exact"
    if _one_network.get() and "batch" not in net.normalization:
        return "network"
    return "bucket"


def oracle_gradients(
    case: Case, *, input_gradient: bool = False, compiled: str | None = None
) -> OracleResult:
    """``jax.value_and_grad`` of manual_bp's forward and loss, in float64.

    Returns the loss, the gradient for every key ``manual_bp.network.backward``
    returns (``Wl``, ``Bl``, ``Zl`` for l = 1..L, ``Al`` for l = 1..L-1 and,
    with ``input_gradient``, ``A0``) and the oracle's forward ``Zl``; a
    normalized case adds ``gammal``, ``betal`` and the taps ``mul``,
    ``varl``, ``Zhatl``, ``Nl`` (what the staged backward returns).
    A case with dropout runs ``forward_xp`` with its own masks (inputs,
    not differentiated; ``Al`` is tapped after the mask).  The weight decay
    ``case.l2`` is not in this loss: ``manual_bp_reference.compare.with_objective``
    adds its exact gradient ``l2 Wl`` and the rounding of adding it.
    ``compiled``: ``"network"``, ``"bucket"``, ``"exact"`` or ``None`` (chosen
    by ``choose_compiled``): see the module's docstring.
    """
    if compiled is None:
        compiled = choose_compiled(case.net, case.m)
    elif compiled not in COMPILED:
        raise ValueError(f"compiled: expected one of {list(COMPILED)} or None, got {compiled!r}")
    if compiled == "network" and "batch" in case.normalization:
        raise ValueError(
            "compiled: a net with batch normalization cannot be compiled as 'network' "
            "(its statistics mix the batch's columns); use 'bucket' or 'exact'"
        )
    if compiled != "exact":
        if compiled == "bucket":
            value, grads, Zs = padded_oracle(case)
        else:
            value, grads, Zs = _network_oracle(case, replace(case.net, l2=0.0))
        if not input_gradient:
            del grads["A0"]
        return OracleResult(value, grads, Zs)
    as64 = {key: np.asarray(value, dtype=np.float64) for key, value in case.params.items()}
    X64, Y64 = np.asarray(case.X, dtype=np.float64), np.asarray(case.Y, dtype=np.float64)
    masks64 = {key: np.asarray(mask, dtype=np.float64) for key, mask in case.masks.items()}
    # The decay is not in this loss: one compilation serves every l2.
    net = replace(case.net, l2=0.0)
    result = _value_and_grads(as64, X64, Y64, net, masks=masks64 or None)
    value, Zs, (d_params, d_taps, d_X) = jax.device_get(result)
    grads = {**d_params, **d_taps}
    if input_gradient:
        grads["A0"] = d_X
    return OracleResult(float(value), grads, Zs)
