"""``layer_oracle``: ``jax.vjp`` of manual_bp's definition of one layer, padded
to few compiled shapes."""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np

from manual_bp_reference.jax_setup import jax, jnp
from manual_bp_reference.layer_check.specs import Array, LayerKind, kind_of


# Compiled per kind (the value, not its name: a kind registered again under a
# name gets its own compilation) and per padded shape.
@functools.partial(jax.jit, static_argnames=("kind",))
def _vjp(kind: LayerKind, arrays: tuple, fixed: dict, dout: object) -> tuple:
    out, vjp = jax.vjp(lambda *inputs: kind.definition(*inputs, **fixed), *arrays)
    return out, vjp(dout)


@functools.partial(jax.jit, static_argnames=("kind", "statics"))
def _shaped_vjp(
    kind: LayerKind, statics: tuple, arrays: tuple, constants: dict, douts: tuple
) -> tuple:
    def definition(*inputs):
        return kind.definition(*inputs, **constants, **dict(statics))

    if kind.returns_loss:
        return jax.value_and_grad(definition, argnums=tuple(range(len(arrays))))(*arrays)
    out, vjp = jax.vjp(definition, *arrays)
    return out, vjp(douts if len(douts) > 1 else douts[0])


def shaped_oracle(kind: LayerKind, inputs: Mapping[str, object], dout: object) -> dict[str, Array]:
    """A shaped kind's outputs and gradients (see ``layer_oracle``): its exact
    shapes compiled, its drawn scalars static."""
    assert kind.shapes is not None
    douts = dout if isinstance(dout, tuple) else () if dout is None else (dout,)
    if kind.shapes.oracle is not None:
        return kind.shapes.oracle(inputs, douts)
    if kind.shapes.padded is not None:
        padded = kind.shapes.padded(inputs, douts)
        return padded.crop(_exact_oracle(kind, padded.inputs, padded.douts))
    return _exact_oracle(kind, inputs, douts)


def _exact_oracle(kind: LayerKind, inputs: Mapping[str, object], douts: tuple) -> dict[str, Array]:
    """``jax.vjp`` of the definition at the case's shapes, compiled (constants,
    such as word indices, labels and masks, traced: one compilation serves them all)."""
    assert kind.shapes is not None
    arrays = tuple(jnp.asarray(inputs[k]) for k in kind.inputs)
    constants = {k: jnp.asarray(inputs[k]) for k in kind.shapes.constants}
    statics = tuple(sorted((k, v) for k, v in inputs.items()
                           if k not in kind.inputs and k not in kind.shapes.constants))  # fmt: skip
    out, grads = _shaped_vjp(kind, statics, arrays, constants, tuple(map(jnp.asarray, douts)))
    outs = out if isinstance(out, tuple) else (out,)
    result = {name: np.asarray(o) for name, o in zip(kind.outputs, outs, strict=True)}
    for k, g in zip(kind.inputs, grads, strict=True):
        result[f"d{k}"] = np.asarray(g)
    return result


@functools.partial(jax.jit, static_argnames=("kind",))
def _value_and_grad(kind: LayerKind, x: object, y: object) -> tuple:
    return jax.value_and_grad(kind.definition)(x, y)


def _bucket(size: int) -> int:
    """The padded size: a power of two, at least 4 (few shapes, few compilations)."""
    return max(4, 1 << (size - 1).bit_length())


def _padded(value: Array, rows: int, columns: int) -> Array:
    out = np.zeros((rows, columns))
    out[: value.shape[0], : value.shape[1]] = value
    return out


def layer_oracle(layer: str, inputs: Mapping[str, Array], dout: object) -> dict[str, Array]:
    """``out`` (or ``loss``) and the gradients of ``layer`` at ``inputs``, ``dout``
    (our layout, float64): ``jax.vjp`` of manual_bp's definition.  ``inputs``
    may also hold the kind's ``fixed`` arrays (dropout's mask), passed to the
    definition by name and not differentiated.

    Each call is padded with zeros to a bucket shape along the axes its entries
    do not mix over (the kind's ``mixes_features``, ``mixes_samples``), so that
    one compiled function serves many shapes: every axis of an affine layer or
    an elementwise activation; the features of batch norm; the samples of layer
    norm, softmax and the loss heads (whose zero target columns add exactly 0,
    and whose mean is rescaled from the padded batch to the real one).
    """
    kind = kind_of(layer)
    if kind.shapes is not None:
        return shaped_oracle(kind, inputs, dout)
    x = inputs["x"]
    (n, m) = x.shape
    N = n if kind.mixes_features else _bucket(n)
    M = m if kind.mixes_samples else _bucket(m)
    if kind.family == "loss":
        y = _padded(inputs["y"], N, M)
        loss, dx = _value_and_grad(kind, jnp.asarray(_padded(x, N, M)), jnp.asarray(y))
        scale = M / m  # the padded mean divided by M, the definition by m
        return {"loss": np.asarray(loss) * scale, "dx": np.asarray(dx)[:n, :m] * scale}
    assert isinstance(dout, np.ndarray)  # every layer but a loss head has one
    rows = dout.shape[0]  # the output's rows: n, or an affine layer's own
    # Output rows other than x's are padded too, unless the kind mixes features.
    R = N if rows == n else (rows if kind.mixes_features else _bucket(rows))
    padded = {"x": _padded(x, N, M)}
    for name, shape in kind.parameters(N, R).items():
        padded[name] = _padded(inputs[name], *shape)
    arrays = tuple(jnp.asarray(padded[k]) for k in kind.inputs)
    fixed = {
        name: jnp.asarray(_padded(value, N, M) if np.ndim(value) == 2 else value)
        for name, value in inputs.items()
        if name not in kind.inputs
    }
    out, grads = _vjp(kind, arrays, fixed, jnp.asarray(_padded(dout, R, M)))
    result = {"out": np.asarray(out)[:rows, :m]}
    for k, g in zip(kind.inputs, grads, strict=True):
        result[f"d{k}"] = np.asarray(g)[tuple(slice(0, size) for size in inputs[k].shape)]
    return result
