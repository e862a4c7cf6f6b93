"""Inverted dropout as a layer: cs231n's ``dropout_forward(x, dropout_param)
-> (out, cache)`` and ``dropout_backward(dout, cache) -> dx``.

``dropout_param`` is ``{"p": p, "mode": "train", "seed": seed}`` with ``p``
the probability of *keeping* a unit (cs231n's since 2017), drawn per case.
The definition is ``manual_bp.dropout.apply`` (``out = x ⊙ M / p``, whose
drop probability is ``1 − p``), differentiated by ``jax.vjp`` with the mask
``M`` held fixed.  Which mask:

* cs231n's recipe, ``np.random.seed(seed); M = np.random.rand(*x.shape) < p``,
  when the user's forward applied it, or applied its complement (keep and
  drop swapped: a bug this kind names) on a case of at least
  ``MIN_SWAP_ENTRIES`` entries, where a mask drawn some other way cannot be
  the complement by chance;
* otherwise the mask the user's forward applied, read from its output
  (``out != 0``; ``x`` is drawn without zeros), with a note.  A correct
  dropout that draws its mask its own way passes; keep and drop swapped
  cannot be told from it then.

The bug catalogue: no ``1/p`` rescaling, the rescaling missing in the
backward, the mask not applied in the backward, keep and drop swapped, and
``p`` taken as the drop probability.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from hypothesis import strategies as st

from manual_bp.dropout import apply
from manual_bp_reference.layer_kinds.kind import Array, Bug, LayerKind, register
from manual_bp_reference.tolerance import SAFETY, unit_roundoff

# Keep probabilities drawn: none is 1/2, where keep and drop scale alike.
KEEP_PROBABILITIES = (0.3, 0.6, 0.8)
# A mask drawn another way equals the recipe's complement by chance with
# probability at most (1/2)^entries: below 1e-6 from 20 entries on.
MIN_SWAP_ENTRIES = 20
RECIPE = "np.random.seed(dropout_param['seed']); mask = np.random.rand(*x.shape) < p"


def recipe_mask(shape: tuple[int, ...], param: Mapping[str, object]) -> Array:
    """cs231n's mask in the user's layout: ``np.random.seed(seed)``, then
    ``np.random.rand(*x.shape) < p`` (the legacy global generator, as seeded)."""
    rand = np.random.RandomState(int(param["seed"])).rand(*shape)  # type: ignore[call-overload]
    return rand < float(param["p"])  # type: ignore[arg-type]


def _fixed(
    inputs: Mapping[str, Array], param: Mapping[str, object], layout: str, out: Array | None
) -> tuple[dict[str, Array], list[str]]:
    """The mask (ours, 0/1) and drop rate the definition applies, and a note
    when the mask is the user's own (see the module notes)."""
    x = inputs["x"]
    user_shape = x.T.shape if layout == "rows" else x.shape
    recipe = recipe_mask(user_shape, param)
    recipe = recipe.T if layout == "rows" else recipe
    keep = float(param["p"])  # type: ignore[arg-type]
    fixed: dict[str, Array] = {"rate": np.asarray(1.0 - keep)}
    if out is None:  # nothing to read the user's mask from
        return {**fixed, "mask": recipe.astype(np.float64)}, []
    kept = out != 0
    if np.array_equal(kept, recipe) or (
        x.size >= MIN_SWAP_ENTRIES and np.array_equal(kept, ~recipe)
    ):
        return {**fixed, "mask": recipe.astype(np.float64)}, []
    note = (
        f"your dropout mask is not cs231n's ({RECIPE}): checked against the mask your "
        "forward applied (where out != 0)"
    )
    return {**fixed, "mask": kept.astype(np.float64)}, [note]


def _tolerance(inputs: Mapping[str, Array], dout: Array | None, dtype: str) -> dict[str, Array]:
    """``out = x ⊙ M / p`` and ``dx = dout ⊙ M / p``: the rounding of ``1/p``,
    of the product and of a cast, each side (3 u of the magnitude)."""
    assert dout is not None  # a dropout layer always has one
    u, tiny = unit_roundoff(dtype), float(np.finfo(np.dtype(dtype)).tiny)
    scale = inputs["mask"] / (1.0 - inputs["rate"])
    return {
        "out": SAFETY * (3 * u * np.abs(inputs["x"] * scale) + tiny),
        "dx": SAFETY * (3 * u * np.abs(dout * scale) + tiny),
    }


def _bug(name: str, description: str, out, dx) -> Bug:
    """A classic bug: its ``out`` and ``dx`` from ``x``, ``dout``, the mask ``M``
    and the keep probability ``p``."""

    def outputs(inputs: Mapping[str, Array], dout: Array | None) -> dict[str, Array]:
        M, p = inputs["mask"], 1.0 - float(inputs["rate"])
        return {"out": out(inputs["x"], M, p), "dx": dx(dout, M, p)}

    return Bug(name, description, outputs)


DROPOUT_BUGS = (
    _bug("no 1/p rescaling", "multiplies by the mask but never divides by p (inverted "
         "dropout rescales the kept units by 1/p, forward and backward)",
         lambda x, M, p: x * M, lambda d, M, p: d * M),
    _bug("1/p missing in the backward", "rescales by 1/p in the forward but not in the "
         "backward: dx = dout * mask", lambda x, M, p: x * M / p, lambda d, M, p: d * M),
    _bug("mask not applied in the backward", "divides dout by p but lets the dropped "
         "units' gradient through: dx = dout / p",
         lambda x, M, p: x * M / p, lambda d, M, p: d / p),
    _bug("keep and drop swapped", "keeps a unit with probability 1 - p (rand > p) but "
         "scales by 1/p", lambda x, M, p: x * (1 - M) / p, lambda d, M, p: d * (1 - M) / p),
    _bug("p taken as the drop probability", "scales the kept units by 1/(1 - p): p is "
         "the probability of keeping a unit", lambda x, M, p: x * M / (1 - p),
         lambda d, M, p: d * M / (1 - p)),
    _bug("p taken as the drop probability", "keeps a unit with probability 1 - p and "
         "scales by 1/(1 - p): p is the probability of keeping a unit",
         lambda x, M, p: x * (1 - M) / (1 - p), lambda d, M, p: d * (1 - M) / (1 - p)),
)  # fmt: skip


DROPOUT = register(
    LayerKind(
        "dropout", "other", ("x",), ("dx",),
        definition=lambda x, mask, rate: apply(x, mask, rate),
        tolerance=_tolerance,
        param=lambda: {"p": 0.6, "mode": "train", "seed": 0},
        param_draws=st.fixed_dictionaries({
            "p": st.sampled_from(KEEP_PROBABILITIES), "mode": st.just("train"),
            "seed": st.integers(0, 2**31 - 1),
        }),
        nonzero=("x",),
        fixed=_fixed,
        probe_shape=(5, 6),  # 30 entries: a swap is told from a mask drawn otherwise
        bugs=DROPOUT_BUGS,
    )
)  # fmt: skip
