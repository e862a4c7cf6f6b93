"""The captioning layers of cs231n's assignment 3: ``word_embedding_forward(x, W)
-> (out, cache)`` / ``word_embedding_backward(dout, cache) -> dW``,
``temporal_affine_forward(x, w, b)`` / ``temporal_affine_backward(dout, cache)
-> (dx, dw, db)``, and ``temporal_softmax_loss(x, y, mask) -> (loss, dx)``.

The definitions are ``manual_bp.embedding`` and ``manual_bp.temporal`` over
``jax.numpy``.  Drawn: one to three captions of one to four steps, words from
a vocabulary of one to five (so repeated words are the rule: the embedding's
gradient must add them up), all-true, all-false and mixed masks.

The temporal softmax loss's normalisation is a convention, inferred per case
from the loss value: cs231n's divides the masked sum by ``N`` (``normalize=
"batch"``), frameworks' masked means by the number of unmasked tokens
(``"tokens"``); a loss that equals one of them is checked in that one (a note
says which), and ``dx`` must then agree with it.

Rounding: the embedding's ``out`` is a copy (exact); each ``dW`` entry sums at
most ``N T`` terms.  Temporal affine is affine's model with ``N T`` samples.
The loss is the cross-entropy head's model (``layer_tolerance.loss_tolerances``)
over the unmasked steps, scaled by their count over ``K``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from manual_bp import embedding, temporal
from manual_bp_reference.jax_setup import jnp
from manual_bp_reference.layer_kinds.convolution import units
from manual_bp_reference.layer_kinds.kind import Array, Bug, LayerKind, register
from manual_bp_reference.layer_kinds.shaped import Drawn, Draws, Padded, Shapes, bucket, embedded
from manual_bp_reference.layer_tolerance import loss_tolerances
from manual_bp_reference.tolerance import SAFETY

MAX_STEPS = 4
MAX_VOCABULARY = 5


def _sizes(d: Draws) -> tuple[int, int]:
    return d.integer(1, min(3, d.max_batch), probe=2), d.integer(1, MAX_STEPS, probe=3)


# word embedding


def _embedding_draw(d: Draws) -> Drawn:
    N, T = _sizes(d)
    V = d.integer(1, MAX_VOCABULARY, probe=4)
    D = d.integer(1, min(3, d.max_width), probe=3)
    arrays = {"x": d.labels((N, T), V), "W": d.values((V, D))}
    return Drawn(arrays, {}, (d.values((N, T, D)),))


def _embedding_tolerance(inputs: Mapping[str, Any], dout: Any, dtype: str) -> dict[str, Array]:
    u, tiny = units(dtype)
    x, W = inputs["x"], inputs["W"]
    terms = x.size + 1
    magnitude = embedding.backward(np.abs(dout), {"x": x, "W": np.abs(W)})
    return {
        "out": SAFETY * tiny * np.ones(x.shape + W.shape[1:]),  # a copy: exact
        "dW": SAFETY * (terms * u * magnitude + (terms + 1) * tiny),
    }


def _embedding_padded(inputs: Mapping[str, Any], douts: tuple[Array, ...]) -> Padded:
    """Captions, steps, words and features padded: padded steps read word 0 with
    ``dout = 0`` there, adding exact zeros to ``dW``."""
    x, W, (dout,) = np.asarray(inputs["x"]), np.asarray(inputs["W"]), douts
    N, T = x.shape
    V, D = W.shape
    shape = (bucket(N), bucket(T))
    padded = {"x": embedded(x, shape).astype(np.int64), "W": embedded(W, (bucket(V), bucket(D)))}

    def crop(result: dict[str, Array]) -> dict[str, Array]:
        return {"out": result["out"][:N, :T, :D], "dW": result["dW"][:V, :D]}

    return Padded(padded, (embedded(dout, (*shape, bucket(D))),), crop)


def _assigned(inputs: Mapping[str, Any], dout: Any) -> dict[str, Array]:
    """``dW[x] += dout``: a buffered fancy-index add keeps one of each repeated word."""
    x, W = inputs["x"], inputs["W"]
    dW = np.zeros(np.shape(W))
    dW[x] += dout
    return {"out": np.asarray(W)[x], "dW": dW}


EMBEDDING_BUGS = (
    Bug("repeated words dropped", "adds with fancy indexing (dW[x] += dout), which keeps "
        "one occurrence of each repeated word: use np.add.at(dW, x, dout)", _assigned),
)  # fmt: skip


WORD_EMBEDDING = register(
    LayerKind(
        "word_embedding", "sequence", ("W",), ("dW",),
        definition=lambda W, *, x: embedding.forward(x, W, xp=jnp)[0],
        tolerance=_embedding_tolerance,
        shapes=Shapes(call=("x", "W"), draw=_embedding_draw, constants=("x",),
                      padded=_embedding_padded),
        bugs=EMBEDDING_BUGS,
    )
)  # fmt: skip


# temporal affine


def _affine_draw(d: Draws) -> Drawn:
    N, T = _sizes(d)
    D = d.integer(1, min(3, d.max_width), probe=3)
    M = d.integer(1, min(3, d.max_width), probe=2)
    arrays = {"x": d.values((N, T, D)), "w": d.values((D, M)), "b": d.values((M,))}
    return Drawn(arrays, {}, (d.values((N, T, M)),))


def _affine_tolerance(inputs: Mapping[str, Any], dout: Any, dtype: str) -> dict[str, Array]:
    u, tiny = units(dtype)
    x, w, b = (np.abs(inputs[k]) for k in ("x", "w", "b"))
    out, cache = temporal.affine_forward(x, w, b)
    dx, dw, db = temporal.affine_backward(np.abs(dout), cache)
    N, T, D = x.shape
    M = w.shape[1]

    def bound(terms: int, magnitude: Array) -> Array:
        return SAFETY * ((terms + 1) * u * magnitude + (terms + 2) * tiny)

    return {"out": bound(D + 1, out), "dx": bound(M, dx), "dw": bound(N * T, dw),
            "db": bound(N * T, db)}  # fmt: skip


def _affine_padded(inputs: Mapping[str, Any], douts: tuple[Array, ...]) -> Padded:
    x, w, b, (dout,) = inputs["x"], inputs["w"], inputs["b"], douts
    N, T, D = np.shape(x)
    M = np.shape(w)[1]
    big = (bucket(N), bucket(T), bucket(D), bucket(M))
    padded = {"x": embedded(x, big[:3]), "w": embedded(w, big[2:]), "b": embedded(b, big[3:])}

    def crop(result: dict[str, Array]) -> dict[str, Array]:
        return {"out": result["out"][:N, :T, :M], "dx": result["dx"][:N, :T, :D],
                "dw": result["dw"][:D, :M], "db": result["db"][:M]}  # fmt: skip

    return Padded(padded, (embedded(dout, (*big[:2], big[3])),), crop)


def _affine_bug(dw_sum_over_t: bool, db_over_n_only: bool):
    def outputs(inputs: Mapping[str, Any], dout: Any) -> dict[str, Array]:
        out, cache = temporal.affine_forward(*(np.asarray(inputs[k]) for k in ("x", "w", "b")))
        dx, dw, db = temporal.affine_backward(np.asarray(dout), cache)
        if not dw_sum_over_t:  # the last step's product only
            dw = np.asarray(inputs["x"])[:, -1].T @ np.asarray(dout)[:, -1]
        if db_over_n_only:  # the first step's sum over the batch
            db = np.asarray(dout)[:, 0].sum(axis=0)
        return {"out": out, "dx": dx, "dw": dw, "db": db}

    return outputs


TEMPORAL_AFFINE_BUGS = (
    Bug("dw from one step", "computes dw from the last step alone: w is shared by every "
        "step, so dw sums x^T dout over N and T", _affine_bug(False, False)),
    Bug("db summed over the batch only", "sums dout over the samples but not the steps: db "
        "sums over N and T", _affine_bug(True, True)),
)  # fmt: skip


TEMPORAL_AFFINE = register(
    LayerKind(
        "temporal_affine", "sequence", ("x", "w", "b"), ("dx", "dw", "db"),
        definition=lambda x, w, b: temporal.affine_forward(x, w, b, xp=jnp)[0],
        tolerance=_affine_tolerance,
        shapes=Shapes(call=("x", "w", "b"), draw=_affine_draw, padded=_affine_padded),
        bugs=TEMPORAL_AFFINE_BUGS,
    )
)  # fmt: skip


# temporal softmax loss


def _loss_draw(d: Draws) -> Drawn:
    N, T = _sizes(d)
    V = d.integer(1, MAX_VOCABULARY, probe=4)
    arrays = {"x": d.values((N, T, V)), "y": d.labels((N, T), V), "mask": d.mask((N, T))}
    return Drawn(arrays, {}, ())


def _loss_tolerance(inputs: Mapping[str, Any], dout: Any, dtype: str) -> dict[str, Array]:
    u, tiny = units(dtype)
    x, y, mask = np.asarray(inputs["x"]), np.asarray(inputs["y"]), np.asarray(inputs["mask"])
    N, _, V = x.shape
    kept = mask.astype(bool)
    tokens = int(kept.sum())
    K = N if inputs.get("normalize", "batch") == "batch" else max(tokens, 1)
    dx = np.full(x.shape, SAFETY * 4 * tiny)
    if tokens == 0:
        return {"loss": np.asarray(SAFETY * tiny), "dx": dx}
    Z = x[kept].T  # (V, tokens): our columns
    Y = np.eye(V)[y[kept]].T
    head = loss_tolerances("cross_entropy", Z, Y, dtype)
    scale = tokens / K
    p = np.exp(Z - Z.max(axis=0)) / np.exp(Z - Z.max(axis=0)).sum(axis=0)
    dx[kept] += (head["dx"] * scale + SAFETY * 2 * u * (p + Y) / K).T  # and the division by K
    loss = head["loss"] * scale + SAFETY * 2 * u * tokens / K
    return {"loss": np.asarray(loss), "dx": dx}


def _loss_value(x: Any, *, y: Any, mask: Any, normalize: str = "batch") -> Any:
    return temporal.softmax_loss_value(x, y, mask, normalize=normalize, xp=jnp)


def _normalization(
    inputs: Mapping[str, Array], param: Mapping[str, object], layout: str, out: Array | None
) -> tuple[dict[str, Any], list[str]]:
    """The normalisation the user's loss takes (see the module notes)."""
    del param, layout
    if out is None:
        return {"normalize": "batch"}, []
    x, y, mask = inputs["x"], inputs["y"], inputs["mask"]
    losses = {
        k: float(temporal.softmax_loss_value(x, y, mask, normalize=k)) for k in ("batch", "tokens")
    }
    tol = float(_loss_tolerance({**inputs, "normalize": "tokens"}, None, "float32")["loss"])
    loss = float(np.asarray(out).reshape(-1)[0]) if np.size(out) == 1 else np.nan
    if abs(loss - losses["batch"]) > tol and abs(loss - losses["tokens"]) <= tol:
        note = ("your loss is the mean over the unmasked tokens (normalize='tokens'); "
                "cs231n's divides by N: checked in yours")  # fmt: skip
        return {"normalize": "tokens"}, [note]
    return {"normalize": "batch"}, []


def _loss_bug(divide: str, dx_divided: bool = True, mask_in_dx: bool = True,
              mask_in_loss: bool = True):  # fmt: skip
    def outputs(inputs: Mapping[str, Any], dout: Any) -> dict[str, Array]:
        x, y, mask = (np.asarray(inputs[k]) for k in ("x", "y", "mask"))
        N, T, _ = x.shape
        kept = mask.astype(bool)
        loss, dx = temporal.softmax_loss(x, y, mask)  # divided by N
        if not mask_in_loss:
            loss = temporal.softmax_loss(x, y, np.ones_like(kept))[0]
        if divide == "NT":
            loss = loss / T
        if not dx_divided:
            dx = dx * N
        if not mask_in_dx:
            _, dx_all = temporal.softmax_loss(x, y, np.ones_like(kept))
            dx = dx_all if dx_divided else dx_all * N
        return {"loss": np.asarray(loss), "dx": dx}

    return outputs


TEMPORAL_SOFTMAX_LOSS_BUGS = (
    Bug("loss divided by N T", "divides the masked sum by N * T: cs231n's loss divides by N",
        _loss_bug("NT")),
    Bug("dx not divided by N", "divides the loss by N but not dx", _loss_bug("N", False)),
    Bug("mask ignored in dx", "applies the mask to the loss but not to dx: masked-out steps "
        "get a gradient", _loss_bug("N", True, False)),
    Bug("mask ignored in the loss", "applies the mask to dx but not to the loss: masked-out "
        "steps add to it", _loss_bug("N", mask_in_loss=False)),
)  # fmt: skip


def _loss_padded(inputs: Mapping[str, Any], douts: tuple[Array, ...]) -> Padded:
    """Steps padded with mask false and words with scores of -1e30 (whose
    probability is exactly 0); the captions not, as cs231n's ``K = N``
    counts them."""
    x, y, mask = np.asarray(inputs["x"]), np.asarray(inputs["y"]), np.asarray(inputs["mask"])
    N, T, V = x.shape
    Tb, Vb = bucket(T), bucket(V)
    xe = np.full((N, Tb, Vb), -1e30)
    xe[:, :T, :V] = x
    xe[:, T:, :] = 0.0  # masked out: any finite scores
    padded = {**inputs, "x": xe, "y": embedded(y, (N, Tb)).astype(np.int64),
              "mask": embedded(mask.astype(bool), (N, Tb)).astype(bool)}  # fmt: skip

    def crop(result: dict[str, Array]) -> dict[str, Array]:
        return {"loss": result["loss"], "dx": result["dx"][:, :T, :V]}

    return Padded(padded, douts, crop)


TEMPORAL_SOFTMAX_LOSS = register(
    LayerKind(
        "temporal_softmax_loss", "sequence", ("x",), ("loss", "dx"),
        definition=_loss_value,
        tolerance=_loss_tolerance,
        fixed=_normalization,
        shapes=Shapes(call=("x", "y", "mask"), draw=_loss_draw, constants=("y", "mask"),
                      loss=True, padded=_loss_padded),
        bugs=TEMPORAL_SOFTMAX_LOSS_BUGS,
    )
)  # fmt: skip
