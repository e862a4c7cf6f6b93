"""The oracle for updates: the optax chain that matches each optimizer and convention.

``optax_chain(optimizer, t)`` builds the ``optax.GradientTransformation`` of a
``manual_bp.optimizers`` optimizer for step ``t``; ``oracle_step`` runs one
step of it in float64 from the same params, gradients and state (the state
translated into optax's), and returns the new params and state in
``manual_bp``'s layout.  Every step is checked from the hand-written side's
own inputs, so the comparison measures one step's rounding.

The oracle shares no decision with the optimizer it checks: it reads the
declared fields as plain values (``dataclasses.fields``; a switch must be
True or False), never the optimizer's methods, and decides itself which keys
AdamW decays (``decayed_keys``: all with ``decay_biases``, else all but the
``B*`` biases), passed to optax as ``mask=``.

The chains
----------
============================  ===============================================
SGD                           ``optax.sgd(α)``
Momentum                      ``optax.sgd(α, momentum=μ, nesterov=...)``
Momentum, dampening τ > 0     ``chain(scale(1 − τ), trace(μ), scale_by_learning_rate(α))``
RMSProp                       ``optax.rmsprop(α, ρ, ε, initial_scale, eps_in_sqrt,
                              bias_correction=...)``
Adam                          ``optax.adam(α, β1, β2, ε, ε_root)``
Adam, no bias correction      ``chain(scale_by_adam(β1, β2, ε', ε_root'), scale(c1 / √c2),
                              scale_by_learning_rate(α))`` (below)
AdamW                         ``optax.adamw(..., weight_decay=λ, mask=...)``
AdamW, decay not scaled by α  ``chain(scale_by_adam, scale_by_learning_rate(α),
                              add_decayed_weights(−λ, mask))``
AdamW, no bias correction     ``chain(scale_by_adam(β1, β2, ε', ε_root'), scale(c1 / √c2),
                              add_decayed_weights(λ, mask), scale_by_learning_rate(α))``
============================  ===============================================

Two conventions optax has no switch for are rebuilt from its parts:

* **dampening** (momentum): ``m ← μ m + (1 − τ) g`` is ``optax.trace`` of the
  gradient scaled by ``1 − τ``, the same sum.  It rests on the linearity of
  the momentum in g: ``property_tests/test_optimizers.py`` also checks the
  hand-derived consequence that a damped run's ``m`` is ``(1 − τ)`` times
  the undamped run's, step after step.
* **Adam without bias correction**: with ``c1 = 1 − β1^t``, ``c2 = 1 − β2^t``
  (what optax divides by at step t)::

      m / (√(v + ε_root) + ε)
        = (c1 / √c2) · (m / c1) / (√(v / c2 + ε_root / c2) + ε / √c2)

  so the uncorrected direction is optax's corrected one at step t with
  ``ε' = ε / √c2`` and ``ε_root' = ε_root / c2``, scaled by ``c1 / √c2``
  before the weight decay and the learning rate.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import optax

from manual_bp.optimizers import SGD, Adam, AdamW, Momentum, Optimizer, RMSProp
from manual_bp_reference.jax_setup import jax, jnp

Array = np.ndarray
# optax state fields and the manual_bp state slots that hold the same numbers.
_FIELDS = {"trace": "m", "mu": "m", "nu": "v", "count": "t"}


# The declared conventions, as the oracle reads them.  Nothing here calls the
# optimizer's methods (``decays``, ``decay_groups``, ``hyperparameters``,
# ``counts_steps``): its kind comes from its class, its numbers and flags from
# its dataclass fields read as plain values, and which keys are decayed, which
# slots the state holds and whether it counts steps are decided below, from the
# conventions documented in ``manual_bp.optimizers`` and ``docs/optimizers.md``.
_KINDS: dict[type, str] = {
    SGD: "sgd", Momentum: "momentum", RMSProp: "rmsprop", Adam: "adam", AdamW: "adamw",
}  # fmt: skip
_SLOTS: dict[str, tuple[str, ...]] = {
    "sgd": (), "momentum": ("m",), "rmsprop": ("v",), "adam": ("m", "v"), "adamw": ("m", "v"),
}  # fmt: skip
_COUNTS = {"sgd": False, "momentum": False, "rmsprop": True, "adam": True, "adamw": True}
# The convention keywords that are switches; every other field is a number.
_SWITCHES = ("nesterov", "eps_in_sqrt", "bias_correction", "decay_biases", "decay_scaled_by_lr")


def _declared(optimizer: Optimizer) -> tuple[str, dict[str, Any]]:
    """``optimizer``'s kind and its fields as plain values, each switch a bool
    and each number a real: a value of another type is refused, never read
    as a truth value."""
    kind = _KINDS.get(type(optimizer))
    if kind is None:
        raise TypeError(f"optimizer: expected one of {sorted(_KINDS.values())}, got {optimizer!r}")
    values = {field.name: getattr(optimizer, field.name) for field in dataclasses.fields(optimizer)}
    for name, value in values.items():
        if name in _SWITCHES:
            if not isinstance(value, bool):
                raise TypeError(
                    f"{kind}.{name}: the declared convention is True or False, "
                    f"the optimizer holds {value!r}"
                )
        elif isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{kind}.{name}: expected a number, the optimizer holds {value!r}")
    return kind, values


def _is_bias(key: str) -> bool:
    """A bias, by manual_bp's naming: ``B1``, ``B2``, ... (every key that starts
    with ``B``).  ``gammal`` and ``betal`` are not biases."""
    return key.startswith("B")


def decayed_keys(optimizer: Optimizer, keys: list[str]) -> list[str]:
    """The keys whose weights the declared conventions decay, by the oracle's own
    rule: none unless AdamW with ``weight_decay > 0``; then every key with
    ``decay_biases=True`` (optax's ``mask=None``), else every key but the
    biases (``_is_bias``)."""
    kind, values = _declared(optimizer)
    if kind != "adamw" or not values["weight_decay"] > 0:
        return []
    return [key for key in keys if values["decay_biases"] or not _is_bias(key)]


def _mask(optimizer: Optimizer, keys: list[str]) -> dict[str, bool] | None:
    """optax's ``mask=`` for ``add_decayed_weights``: None (decay every leaf)
    unless some key is kept, else ``{key: decayed}``."""
    decayed = set(decayed_keys(optimizer, keys))
    if decayed == set(keys):
        return None
    return {key: key in decayed for key in keys}


def _structure(optimizer: Optimizer) -> tuple[str, tuple[tuple[str, bool], ...]]:
    """What decides the shape of the chain (not its numbers): the kind and the flags."""
    kind, values = _declared(optimizer)
    flags = {
        "nesterov": values.get("nesterov", False),
        "damped": values.get("dampening", 0.0) > 0,
        "eps_in_sqrt": values.get("eps_in_sqrt", False),
        "bias_correction": values.get("bias_correction", False),
        "decayed": values.get("weight_decay", 0.0) > 0,
        "decay_scaled_by_lr": values.get("decay_scaled_by_lr", True),
    }
    return kind, tuple(sorted(flags.items()))


def _numbers(optimizer: Optimizer) -> dict[str, float]:
    """The declared numbers (learning rate and hyperparameters), the switches left out."""
    _, values = _declared(optimizer)
    return {name: float(value) for name, value in values.items() if name not in _SWITCHES}


def _chain(kind: str, flags: dict[str, bool], h: Mapping[str, Any], t: Any, mask: Any):
    """The optax chain of one optimizer; ``h`` holds its numbers (floats, or
    traced arrays under ``jax.jit``), ``mask`` AdamW's decay mask (None: all)."""
    lr = h["learning_rate"]
    if kind == "sgd":
        return optax.sgd(lr)
    if kind == "momentum":
        if flags["damped"]:
            return optax.chain(
                optax.scale(1.0 - h["dampening"]),
                optax.trace(decay=h["momentum"], nesterov=flags["nesterov"]),
                optax.scale_by_learning_rate(lr),
            )
        return optax.sgd(lr, momentum=h["momentum"], nesterov=flags["nesterov"])
    if kind == "rmsprop":
        return optax.rmsprop(
            lr,
            decay=h["decay"],
            eps=h["eps"],
            initial_scale=h["initial_scale"],
            eps_in_sqrt=flags["eps_in_sqrt"],
            bias_correction=flags["bias_correction"],
        )
    b1, b2, eps, eps_root = h["b1"], h["b2"], h["eps"], h["eps_root"]
    decayed = kind == "adamw" and flags["decayed"]
    if flags["bias_correction"]:
        if not decayed:
            return optax.adam(lr, b1=b1, b2=b2, eps=eps, eps_root=eps_root)
        if flags["decay_scaled_by_lr"]:
            return optax.adamw(
                lr, b1=b1, b2=b2, eps=eps, eps_root=eps_root,
                weight_decay=h["weight_decay"], mask=mask,
            )  # fmt: skip
    parts = []
    if flags["bias_correction"]:
        parts.append(optax.scale_by_adam(b1=b1, b2=b2, eps=eps, eps_root=eps_root))
    else:
        # optax's corrected step scaled by c1 / √c2, with ε / √c2 and ε_root / c2.
        c1, c2 = 1.0 - b1**t, 1.0 - b2**t
        root_c2 = c2**0.5
        parts.append(optax.scale_by_adam(b1=b1, b2=b2, eps=eps / root_c2, eps_root=eps_root / c2))
        parts.append(optax.scale(c1 / root_c2))
    if decayed and flags["decay_scaled_by_lr"]:
        parts.append(optax.add_decayed_weights(h["weight_decay"], mask))
    parts.append(optax.scale_by_learning_rate(lr))
    if decayed and not flags["decay_scaled_by_lr"]:
        parts.append(optax.add_decayed_weights(-h["weight_decay"], mask))
    return optax.chain(*parts)


def optax_chain(optimizer: Optimizer, t: int, keys: list[str]) -> optax.GradientTransformation:
    """The optax transformation that computes ``optimizer``'s step ``t`` (1, 2, ...)
    on a dict of parameters with ``keys`` (AdamW's mask names them).

    Examples
    --------
    >>> from manual_bp.optimizers import RMSProp
    >>> chain = optax_chain(RMSProp(0.01, eps_in_sqrt=False), 1, ["W1", "B1"])
    >>> type(chain).__name__
    'GradientTransformationExtraArgs'
    """
    kind, flags = _structure(optimizer)
    return _chain(kind, dict(flags), _numbers(optimizer), t, _mask(optimizer, keys))


def _as64(arrays: Mapping[str, Array]) -> dict[str, Any]:
    return {key: jnp.asarray(np.asarray(value, dtype=np.float64)) for key, value in arrays.items()}


def _fill(node: Any, slots: Mapping[str, Any], t: Any) -> Any:
    """optax's state ``node`` with ``t`` and our slots in its count/mu/nu/trace fields."""
    if hasattr(node, "_fields"):
        changes = {}
        for field in node._fields:
            slot = _FIELDS.get(field)
            if slot == "t":
                changes[field] = jnp.asarray(t, dtype=jnp.int32)
            elif slot is not None:
                changes[field] = slots[slot]
            else:
                changes[field] = _fill(getattr(node, field), slots, t)
        return node._replace(**changes)
    if isinstance(node, tuple):
        return tuple(_fill(child, slots, t) for child in node)
    return node


def _collect(node: Any, into: dict[str, Any]) -> dict[str, Any]:
    """Our slots read back out of optax's state ``node`` (the count is not read)."""
    if hasattr(node, "_fields"):
        for field in node._fields:
            slot = _FIELDS.get(field)
            if slot not in (None, "t"):
                into[slot] = getattr(node, field)
            elif slot is None:
                _collect(getattr(node, field), into)
    elif isinstance(node, tuple):
        for child in node:
            _collect(child, into)
    return into


def _run(chain, grads, slots, params, t):
    """One optax step: ``(new params, {slot: new values})``, all as optax returns them."""
    optax_state = _fill(chain.init(params), slots, t - 1)
    updates, new_state = chain.update(grads, optax_state, params)
    return optax.apply_updates(params, updates), _collect(new_state, {})


def tree_oracle_step(
    optimizer: Optimizer,
    grads: Mapping[str, Array],
    state: Mapping[str, Any],
    params: Mapping[str, Array],
) -> tuple[dict[str, Array], dict[str, Any]]:
    """optax's step on the parameter tree itself, in float64, op by op (the
    definition that ``oracle_step`` computes faster)."""
    t = int(state.get("t", 0)) + 1
    chain = optax_chain(optimizer, t, list(params))
    slots = {slot: _as64(state[slot]) for slot in _SLOTS[_declared(optimizer)[0]]}
    new_params, new_slots = _run(chain, _as64(grads), slots, _as64(params), t)
    return _ours(optimizer, t, jax.device_get(new_params), jax.device_get(new_slots))


def _ours(optimizer: Optimizer, t: int, new_params: Mapping, new_slots: Mapping):
    kind, _ = _declared(optimizer)
    state: dict[str, Any] = {"t": t} if _COUNTS[kind] else {}
    for slot in _SLOTS[kind]:
        state[slot] = {key: np.asarray(value) for key, value in new_slots[slot].items()}
    return {key: np.asarray(value) for key, value in new_params.items()}, state


# --- the fast path: the tree flattened into two padded vectors ---------------------------
#
# Every transformation above is elementwise, and apart from AdamW's mask it
# treats every leaf alike.  So the oracle may run on the tree flattened into
# two vectors, "decayed" and "kept" (AdamW's mask), each zero-padded to a
# power of two: then one compiled function serves every tree and every value
# of the hyperparameters (traced, not constants), one compile per kind and
# flags.  test_optimizers.py proves it equal to ``tree_oracle_step``.
_MASK = {"decayed": True, "kept": False}
_MIN_LENGTH = 64


@jax.jit(static_argnames=("kind", "flags"))
def _flat_step(kind, flags, h, t, grads, slots, params):
    chain = _chain(kind, dict(flags), h, t, _MASK if kind == "adamw" else None)
    return _run(chain, grads, slots, params, t)


def _flatten(arrays: Mapping[str, Array], groups: dict[str, list[str]], length: int):
    flat = {}
    for group, keys in groups.items():
        vector = np.zeros(length)
        values = [np.asarray(arrays[key], dtype=np.float64).ravel() for key in keys]
        if values:
            joined = np.concatenate(values)
            vector[: joined.size] = joined
        flat[group] = vector
    return flat


def _unflatten(flat: Mapping[str, Array], groups, shapes) -> dict[str, Array]:
    arrays = {}
    for group, keys in groups.items():
        start = 0
        for key in keys:
            size = int(np.prod(shapes[key]))
            arrays[key] = np.asarray(flat[group][start : start + size]).reshape(shapes[key])
            start += size
    return arrays


def oracle_step(
    optimizer: Optimizer,
    grads: Mapping[str, Array],
    state: Mapping[str, Any],
    params: Mapping[str, Array],
) -> tuple[dict[str, Array], dict[str, Any]]:
    """optax's step from the same inputs, in float64: ``(new_params, new_state)``.

    ``state`` is in ``manual_bp``'s layout (as ``optimizer.init`` makes it);
    so is the state returned.  Every array is cast exactly to float64.  Runs
    compiled, on the flattened tree (see the notes above).

    Examples
    --------
    >>> from manual_bp.optimizers import RMSProp
    >>> params, grads = {"W1": np.array([[1.0, -2.0]])}, {"W1": np.array([[0.5, 0.0]])}
    >>> rmsprop = RMSProp(learning_rate=0.1)
    >>> new, state = oracle_step(rmsprop, grads, rmsprop.init(params), params)
    >>> new["W1"], state["v"]["W1"]
    (array([[ 0.6837723, -2.       ]]), array([[0.025, 0.   ]]))
    """
    keys = list(params)
    shapes = {key: np.shape(params[key]) for key in keys}
    decayed = set(decayed_keys(optimizer, keys))
    groups = {
        "decayed": [key for key in keys if key in decayed],
        "kept": [key for key in keys if key not in decayed],
    }
    size = max(sum(int(np.prod(shapes[k])) for k in group) for group in groups.values())
    length = max(_MIN_LENGTH, 1 << max(size - 1, 0).bit_length())
    t = int(state.get("t", 0)) + 1
    kind, flags = _structure(optimizer)
    h = {name: np.float64(value) for name, value in _numbers(optimizer).items()}
    slots = {slot: _flatten(state[slot], groups, length) for slot in _SLOTS[kind]}
    new_params, new_slots = jax.device_get(
        _flat_step(
            kind, flags, h, np.int32(t),
            _flatten(grads, groups, length), slots, _flatten(params, groups, length),
        )
    )  # fmt: skip
    unflat_slots = {slot: _unflatten(new_slots[slot], groups, shapes) for slot in _SLOTS[kind]}
    return _ours(optimizer, t, _unflatten(new_params, groups, shapes), unflat_slots)


@dataclass(frozen=True)
class OptaxOptimizer:
    """``optimizer``'s rule computed by optax (``oracle_step``), with the
    ``init``/``update`` form of ``manual_bp.optimizers``: what the second net
    of ``manual-bp train --optimizer`` trains with.  The new params and state
    are cast back to the params' dtype."""

    optimizer: Optimizer

    @property
    def learning_rate(self) -> float:
        return self.optimizer.learning_rate

    def init(self, params: Mapping[str, Array]) -> dict[str, Any]:
        return self.optimizer.init(params)

    def update(self, grads, state, params):
        new_params, new_state = oracle_step(self.optimizer, grads, state, params)
        dtypes = {key: np.asarray(value).dtype for key, value in params.items()}
        new_params = {key: value.astype(dtypes[key]) for key, value in new_params.items()}
        for slot in _SLOTS[_declared(self.optimizer)[0]]:
            new_state[slot] = {k: v.astype(dtypes[k]) for k, v in new_state[slot].items()}
        return new_params, new_state
