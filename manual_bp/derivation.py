"""The backward derivation of a network, generated from the code's own definitions;
one layer function's, written by hand in its module (``layer_derivation``); and
one research quantity's: per-example gradients, DP-SGD, the Hessian- and
Gauss-Newton-vector products (``quantity_derivation``).

Nothing here is written per activation or per loss.  Every line comes from:

* ``ACTIVATIONS[name].formula`` and ``.backward_formula`` (text in ``Z``,
  ``A``, ``dA``) and ``.derivative`` (``None`` when the Jacobian is not
  diagonal, as for softmax);
* ``LOSSES[name].formula``, ``.fused_formula``, ``.dA_formula`` and
  ``.canonical_activation``;
* ``manual_bp.architecture.gradient_keys``, the keys ``backward`` returns;
* the three lines every layer shares, as ``network.backward`` computes them::

      dWl = dZl · A(l-1)ᵀ        dBl = Σ_columns dZl        dA(l-1) = Wlᵀ · dZl

The generic symbols of a definition are numbered with the layer
(``"dA ⊙ A ⊙ (1 − A)"`` becomes ``"dA2 ⊙ A2 ⊙ (1 − A2)"`` in layer 2), so a
new activation or loss explains itself.  What each step reads from the cache
is the set of cache entries (``A0``, ``Wl``, ``Zl``, ``Al``) and ``Y`` named
in its formula.

Shapes follow the seed: the batch is stored as columns, ``Wl`` is
``(nl, n(l-1))``, ``Bl`` is ``(nl, 1)``, ``Zl`` and ``Al`` are ``(nl, m)``.
``m`` is the symbol ``"m"`` unless a batch size is given.

>>> d = derive([2, 3, 3, 1], ["sigmoid"] * 3, "binary_cross_entropy")
>>> gradient_formula(d, "W2")
'dW2 = dZ2 · A1ᵀ'
>>> gradient_formula(d, "Z3"), gradient_formula(d, "Z2")
('dZ3 = (A3 − Y) / m', 'dZ2 = dA2 ⊙ A2 ⊙ (1 − A2)')
>>> step = d.gradient_step("A1")
>>> step.formula, step.shape_text, step.reads
('dA1 = W2ᵀ · dZ2', '(3, m) = (3, 3) · (3, m)', ('W2',))

Weight decay ``λ/2 Σ_l ‖Wl‖²`` in the loss adds ``λ · Wl`` to every ``dWl``
(not to ``dBl``); inverted dropout in a hidden layer caches ``Fl = f_l(Zl)``
and the mask ``Ml``, multiplies ``dAl`` by the same mask and scale, and
``f_l'`` reads ``Fl``:

>>> d = derive([2, 3, 3, 1], ["sigmoid"] * 3, "binary_cross_entropy", l2=0.01,
...            dropout=(0.5, 0.0, 0.0))
>>> gradient_formula(d, "W2"), gradient_formula(d, "B2")
('dW2 = dZ2 · A1ᵀ + 0.01 · W2', 'dB2 = Σ_columns dZ2')
>>> [step.formula for step in d.steps if step.layer == 1 and step.section == "forward"]
['Z1 = W1 · A0 + B1', 'F1 = sigmoid(Z1) = 1 / (1 + exp(−Z1))', 'A1 = F1 ⊙ M1 / (1 − 0.5)']
>>> [step.formula for step in d.steps if step.layer == 1 and step.gradient][:2]
['dF1 = dA1 ⊙ M1 / (1 − 0.5)', 'dZ1 = dF1 ⊙ F1 ⊙ (1 − F1)']
"""

from __future__ import annotations

import difflib
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from manual_bp import (
    convolution,
    curvature,
    dp_sgd,
    embedding,
    per_example,
    pooling,
    recurrent,
    spatial_normalization,
    temporal,
)
from manual_bp.activations import ACTIVATIONS
from manual_bp.architecture import cache_keys, gradient_keys, param_shapes
from manual_bp.dropout import resolve as resolve_dropout
from manual_bp.losses import LOSSES, Loss
from manual_bp.normalization import EPS, resolve
from manual_bp.validation import (
    check_activations,
    check_l2,
    check_layer_sizes,
    check_loss_pair,
    check_positive_int,
)

Shape = tuple[int | str, ...]

# The generic symbols of the formulas in activations.py and losses.py.  A
# symbol is a whole token: the letters around it must not be ASCII letters or
# digits ("tanh", "max" and "Y" stay), but "Z³" and "−Z" are numbered.
_NOT_IN_NAME_BEFORE = r"(?<![A-Za-z0-9_])"
_NOT_IN_NAME_AFTER = r"(?![A-Za-z0-9_])"
_GENERIC = re.compile(_NOT_IN_NAME_BEFORE + r"(dA|dZ|A|Z)" + _NOT_IN_NAME_AFTER)
# The normalization step's variables (manual_bp.normalization), longest names first.
_NORMALIZATION_NAMES = r"Zhat|inv_std|gamma|beta|mu|var|N"
# A numbered variable or gradient, or Y, in a formula; a trailing ᵀ transposes it.
_VARIABLE = re.compile(
    _NOT_IN_NAME_BEFORE
    + rf"(d?(?:{_NORMALIZATION_NAMES}|[WBAZFM])[0-9]+|Y)(ᵀ?)"
    + _NOT_IN_NAME_AFTER
)
# What a step can read from the forward cache, or the targets (beta, like B, is not cached).
_CACHED = re.compile(
    _NOT_IN_NAME_BEFORE + r"((?:Zhat|inv_std|gamma|mu|var|N|[WAZFM])[0-9]+|Y)" + _NOT_IN_NAME_AFTER
)


def at_layer(text: str, layer: int) -> str:
    """Number the generic symbols ``A``, ``Z``, ``dA``, ``dZ`` of a formula.

    >>> at_layer("dA ⊙ A ⊙ (1 − A)", 2)
    'dA2 ⊙ A2 ⊙ (1 − A2)'
    >>> at_layer("Z ⊙ (1 + tanh(u)) / 2, u = √(2/π)·(Z + 0.044715·Z³)", 1)
    'Z1 ⊙ (1 + tanh(u)) / 2, u = √(2/π)·(Z1 + 0.044715·Z1³)'
    """
    return _GENERIC.sub(lambda match: f"{match.group(1)}{layer}", text)


def cache_reads(formula: str) -> tuple[str, ...]:
    """The cache entries (``A0``, ``Wl``, ``Zl``, ``Al``) and ``Y`` a formula's
    right-hand side names, in order of first appearance.

    >>> cache_reads("dZ2 = dA2 ⊙ A2 ⊙ (1 − A2)")
    ('A2',)
    """
    right = formula.split(" = ", 1)[1]
    return tuple(dict.fromkeys(match.group(1) for match in _CACHED.finditer(right)))


@dataclass(frozen=True)
class Step:
    """One line of the derivation.

    Attributes
    ----------
    section : "forward", "loss", "output" or "hidden"
    layer : int
        ``l`` of the layer the step belongs to (``L`` for the loss).
    key : str
        The variable the step computes (forward) or whose gradient it
        computes (backward), keyed as ``grads`` keys it; ``"L"`` for the loss.
    formula : str
        ``lhs = rhs`` in the seed's notation, e.g. ``"dW2 = dZ2 · A1ᵀ"``.
    shapes : dict of str to tuple
        The shape of every variable the formula names, the left-hand side
        first; ``"m"`` stands for the batch size unless it was given.
    shape_text : str
        The shapes as printed: the formula with every variable replaced by its
        shape for products and sums, else the shared shape of the terms.
    reads : tuple of str
        The cache entries (and ``Y``) the step reads.
    gradient : bool
        A backward step.
    returned : bool
        ``backward`` returns this gradient (``key`` is in ``gradient_keys``);
        ``dAL`` of the general chain rule is computed but not returned.
    note : str
        Why the step has this form, when that depends on the definitions.
    form : str
        ``"staged"`` for the steps of a normalization's staged backward
        (``backward(..., staged=True)``), ``""`` otherwise.
    """

    section: str
    layer: int
    key: str
    formula: str
    shapes: dict[str, Shape]
    shape_text: str
    reads: tuple[str, ...]
    gradient: bool = False
    returned: bool = False
    note: str = ""
    # "staged" for the normalization's staged form, which the closed form replaces.
    form: str = ""

    @property
    def shape(self) -> Shape:
        """The shape of the left-hand side (``()`` for the loss)."""
        return next(iter(self.shapes.values()))


@dataclass(frozen=True)
class Derivation:
    """The forward pass, the loss and the backward pass of one network."""

    layer_sizes: tuple[int, ...]
    activations: tuple[str, ...]
    loss: str
    m: int | str
    input_gradient: bool
    steps: tuple[Step, ...]
    l2: float = 0.0
    dropout: tuple[float, ...] = ()
    # One entry per layer (None, "batch", "layer"), or () without normalization.
    normalization: tuple[str | None, ...] = ()

    @property
    def depth(self) -> int:
        return len(self.activations)

    @property
    def fused(self) -> bool:
        """The output layer uses the loss's fused gradient (the canonical pair)."""
        return LOSSES[self.loss].canonical_activation == self.activations[-1]

    def gradient_step(self, key: str) -> Step:
        """The backward step that computes ``grads[key]``."""
        for step in self.steps:
            if step.gradient and step.returned and step.key == key:
                return step
        keys = gradient_keys(self.depth, self.input_gradient, normalization=self.normalization)
        raise ValueError(f"key: expected one of {keys}, got {key!r}")

    def text(self) -> str:
        """The derivation as printed by ``manual-bp explain``."""
        return render(self)


def _shape_of(
    symbol: str, sizes: Sequence[int], m: int | str, normalization: Sequence[str | None] = ()
) -> Shape:
    """``Wl``: (nl, n(l-1)); ``Bl``: (nl, 1); ``Zl``, ``Al``: (nl, m); ``Y``: (nL, m).
    A gradient ``dV`` has the shape of ``V``.  A normalized layer's ``gammal``,
    ``betal``: (nl, 1); ``Zhatl``, ``Nl``: (nl, m); ``mul``, ``varl``,
    ``inv_stdl``: (nl, 1) for batch, (1, m) for layer normalization."""
    name = symbol.removeprefix("d")
    if name == "Y":
        return (sizes[-1], m)
    base = name.rstrip("0123456789")
    l = int(name[len(base) :])
    if base in ("W", "B"):
        return param_shapes(sizes)[name]
    if base in ("gamma", "beta"):
        return (sizes[l], 1)
    if base in ("mu", "var", "inv_std"):
        return (sizes[l], 1) if normalization[l - 1] == "batch" else (1, m)
    return (sizes[l], m)


def _format_shape(shape: Shape) -> str:
    return "scalar" if not shape else f"({', '.join(map(str, shape))})"


def _step(
    section: str,
    layer: int,
    key: str,
    formula: str,
    sizes: Sequence[int],
    m: int | str,
    product: bool = False,
    *,
    normalization: Sequence[str | None] = (),
    **flags: Any,
) -> Step:
    """A step with its shapes and cache reads worked out from the formula.

    ``product`` marks the matrix products and sums (``Zl``, ``dWl``, ``dBl``,
    ``dA(l-1)``), whose shapes are printed term by term.
    """
    left, right = formula.split(" = ", 1)
    shapes: dict[str, Shape] = {
        left: () if left == "L" else _shape_of(left, sizes, m, normalization)
    }
    for match in _VARIABLE.finditer(right):
        shapes.setdefault(match.group(1), _shape_of(match.group(1), sizes, m, normalization))
    if product:

        def substitute(match: re.Match) -> str:
            shape = shapes[match.group(1)]
            return _format_shape(shape[::-1] if match.group(2) else shape)

        shape_text = f"{_format_shape(shapes[left])} = {_VARIABLE.sub(substitute, right)}"
    else:
        by_shape: dict[Shape, list[str]] = {}
        for symbol, shape in shapes.items():
            by_shape.setdefault(shape, []).append(symbol)
        shape_text = "; ".join(
            f"{', '.join(symbols)}: {_format_shape(shape)}" for shape, symbols in by_shape.items()
        )
    return Step(section, layer, key, formula, shapes, shape_text, cache_reads(formula), **flags)


def _shared_steps(
    section: str, l: int, sizes: Sequence[int], m: int | str, input_gradient: bool, l2: float = 0.0
) -> list[Step]:
    """dWl, dBl and dA(l-1): the same form in every layer (``network.backward``),
    ``dWl`` with the weight decay's ``λ · Wl``."""
    decay = f" + {_number(l2)} · W{l}" if l2 else ""
    formulas = {
        f"W{l}": f"dW{l} = dZ{l} · A{l - 1}ᵀ{decay}",
        f"B{l}": f"dB{l} = Σ_columns dZ{l}",
    }
    if l > 1 or input_gradient:
        formulas[f"A{l - 1}"] = f"dA{l - 1} = W{l}ᵀ · dZ{l}"
    return [
        _step(section, l, key, formula, sizes, m, product=True, gradient=True, returned=True)
        for key, formula in formulas.items()
    ]


def _dA_formula(loss: Loss) -> str:
    """``dL/dAL`` as text: every loss has one for the general chain rule."""
    if loss.dA_formula is None:
        raise ValueError(f"loss {loss.name!r} has no dA_formula for the general chain rule")
    return loss.dA_formula


def _activation_note(name: str) -> str:
    if ACTIVATIONS[name].derivative is None:
        return (
            f"{name}'s Jacobian is not diagonal: dZ is its Jacobian-vector product, "
            "column by column"
        )
    return f"{name} acts entry by entry: dZ = dA ⊙ {name}'(Z)"


def _on_input(text: str, l: int) -> str:
    """``f_l`` of a normalized layer reads ``Nl``, not ``Zl``: rename the input."""
    return re.sub(_NOT_IN_NAME_BEFORE + f"Z{l}" + _NOT_IN_NAME_AFTER, f"N{l}", text)


def _sum_and_count(kind: str, l: int) -> tuple[str, str]:
    """The sum over the kind's axis and ``k``, the number of entries summed."""
    return ("Σ_columns", "m") if kind == "batch" else ("Σ_rows", f"n{l}")


def _normalization_forward(l: int, kind: str, name: str) -> list[tuple[str, str]]:
    """``(key, formula)`` of the normalization step and the activation after it."""
    total, k = _sum_and_count(kind, l)
    value = f"{name}(N{l})"
    definition = _on_input(at_layer(ACTIVATIONS[name].formula, l), l)
    if definition != value:
        value += f" = {definition}"
    return [
        (f"mu{l}", f"mu{l} = (1/{k}) {total} Z{l}"),
        (f"var{l}", f"var{l} = (1/{k}) {total} (Z{l} − mu{l})²"),
        (f"inv_std{l}", f"inv_std{l} = 1 / √(var{l} + eps)"),
        (f"Zhat{l}", f"Zhat{l} = (Z{l} − mu{l}) ⊙ inv_std{l}"),
        (f"N{l}", f"N{l} = gamma{l} ⊙ Zhat{l} + beta{l}"),
        (f"A{l}", f"A{l} = {value}"),
    ]


def _normalization_backward(
    l: int, kind: str, name: str
) -> list[tuple[str, str, bool | None, str]]:
    """``(key, formula, returned, note)`` of a normalized hidden layer's backward
    steps before ``dWl``: ``dNl``, ``dgammal``, ``dbetal``, ``dZhatl``, the
    staged form (``returned`` None: returned only with ``staged=True``) and
    the closed form (``manual_bp.normalization``)."""
    total, k = _sum_and_count(kind, l)
    axis = "the batch (the columns)" if kind == "batch" else "the units (the rows)"
    into = f"{_on_input(at_layer(ACTIVATIONS[name].backward_formula, l), l)}"
    staged_note = (
        f"staged form (backward(..., staged=True)): back through the graph one node at a "
        f"time, Zhat{l} <- (Z{l} − mu{l}, inv_std{l}) <- var{l} <- mu{l}; {kind} "
        f"normalization sums over {axis}, k = {k}"
    )
    closed_note = (
        f"closed form (the default): the staged lines collapsed, with Σ (Z{l} − mu{l}) = 0 and "
        f"Zhat{l} = (Z{l} − mu{l}) ⊙ inv_std{l}; it reads only inv_std{l} and Zhat{l}"
    )
    if kind == "batch":
        closed_note += (
            f".  B{l} shifts a whole row of Z{l} and the mean removes it: dB{l} is 0 up to rounding"
        )
    return [
        (
            f"N{l}",
            f"dN{l} = {into}",
            True,
            f"{kind} normalization between Z{l} and {name}: the activation's backward step "
            f"gives dN{l}, the normalization's takes it to dZ{l}",
        ),
        (f"gamma{l}", f"dgamma{l} = Σ_columns (dN{l} ⊙ Zhat{l})", True, ""),
        (f"beta{l}", f"dbeta{l} = Σ_columns dN{l}", True, ""),
        (f"Zhat{l}", f"dZhat{l} = gamma{l} ⊙ dN{l}", True, ""),
        (
            f"var{l}",
            f"dvar{l} = −½ inv_std{l}³ ⊙ {total} (dZhat{l} ⊙ (Z{l} − mu{l}))",
            None,
            staged_note,
        ),
        (
            f"mu{l}",
            f"dmu{l} = −inv_std{l} ⊙ {total} dZhat{l} − (2/{k}) dvar{l} ⊙ {total} (Z{l} − mu{l})",
            None,
            "",
        ),
        (
            f"Z{l}",
            f"dZ{l} = dZhat{l} ⊙ inv_std{l} + (2/{k}) dvar{l} ⊙ (Z{l} − mu{l}) + dmu{l} / {k}",
            None,
            "",
        ),
        (
            f"Z{l}",
            f"dZ{l} = (inv_std{l} / {k}) ⊙ ({k} dZhat{l} − {total} dZhat{l} − Zhat{l} ⊙ "
            f"{total} (dZhat{l} ⊙ Zhat{l}))",
            True,
            closed_note,
        ),
    ]


def derive(
    layer_sizes: Sequence[int],
    activations: Sequence[str],
    loss: str,
    m: int | None = None,
    input_gradient: bool = False,
    *,
    l2: float = 0.0,
    dropout: Sequence[float] | None = None,
    normalization: object = None,
) -> Derivation:
    """Every step of the forward pass, the loss and the backward pass.

    Parameters
    ----------
    layer_sizes : [n0, n1, ..., nL]
    activations : L activation names (keys of ``ACTIVATIONS``)
    loss : a key of ``LOSSES`` that accepts the output activation
    m : the batch size, or None for the symbol ``m``
    input_gradient : include ``dA0 = W1ᵀ · dZ1``, as ``backward`` does with it
    l2 : the weight decay ``λ`` in the loss (``manual_bp.losses.l2_penalty``)
    dropout : one drop probability per layer, the output layer's 0
        (``manual_bp.dropout.resolve``), or None
    normalization : ``None``, ``"batch"``, ``"layer"`` or one per hidden layer
        (``manual_bp.normalization.resolve``): the normalization step, its
        staged and its closed backward

    Returns
    -------
    Derivation
        Its backward steps that ``backward`` returns are exactly one per key
        of ``gradient_keys(L, input_gradient, normalization=...)``, in the
        order ``backward`` computes them (layer L down to 1: dZl, dWl, dBl,
        dA(l-1); a normalized layer's dNl, dgammal, dbetal, dZhatl first, and
        its staged form's steps, which the closed form's dZl replaces, marked
        as not returned).
    """
    sizes = check_layer_sizes(layer_sizes)
    depth = len(sizes) - 1
    names = check_activations(activations, depth)
    check_loss_pair(loss, names[-1], sizes[-1])
    batch: int | str = "m" if m is None else check_positive_int(m, "m")
    spec = LOSSES[loss]
    l2 = check_l2(l2)
    rates = resolve_dropout(list(dropout)[:-1] if dropout else None, depth)
    kinds = resolve(normalization, depth)
    norm = kinds if any(kinds) else ()
    both = [l for l in range(1, depth) if rates[l - 1] and kinds[l - 1]]
    if both:
        raise ValueError(
            f"dropout, normalization: the derivation does not yet cover both in one layer "
            f"(layers {both}); the network computes them, explain derives one per layer"
        )

    steps = [_step("forward", 0, "A0", "A0 = X", sizes, batch)]
    for l, name in enumerate(names, start=1):
        steps.append(
            _step("forward", l, f"Z{l}", f"Z{l} = W{l} · A{l - 1} + B{l}", sizes, batch, True)
        )
        kind = kinds[l - 1]
        if kind:
            for key, formula in _normalization_forward(l, kind, name):
                steps.append(_step("forward", l, key, formula, sizes, batch, normalization=norm))
            continue
        value = f"{name}(Z{l})"
        definition = at_layer(ACTIVATIONS[name].formula, l)
        if definition != value:
            value += f" = {definition}"
        if rates[l - 1]:
            steps.append(_step("forward", l, f"F{l}", f"F{l} = {value}", sizes, batch))
            value = f"F{l} ⊙ M{l} / (1 − {_number(rates[l - 1])})"
        steps.append(_step("forward", l, f"A{l}", f"A{l} = {value}", sizes, batch))
    penalty = f" + ({_number(l2)}/2) Σ_l ‖Wl‖²" if l2 else ""
    loss_formula = f"L = {at_layer(spec.formula, depth)}{penalty}"
    steps.append(_step("loss", depth, "L", loss_formula, sizes, batch))

    for l in range(depth, 0, -1):
        name = names[l - 1]
        section = "output" if l == depth else "hidden"
        backward_flags: dict[str, Any] = dict(gradient=True, returned=True)
        if l == depth and name == spec.canonical_activation:
            note = (
                f"{name} with {loss} is the canonical pair: the loss's gradient is fused, "
                f"dZ{l} comes straight from A{l} and Y and {name}'(Z{l}) is never evaluated"
            )
            formula = f"dZ{l} = {at_layer(spec.fused_formula, l)}"
            steps.append(
                _step(section, l, f"Z{l}", formula, sizes, batch, **backward_flags, note=note)
            )
        else:
            if l == depth:
                note = (
                    f"{name} with {loss} is not the canonical pair "
                    f"({spec.canonical_activation}): the general chain rule, dL/dA{l} first, "
                    f"then {name}'s backward step as in a hidden layer"
                )
                formula = f"dA{l} = {at_layer(_dA_formula(spec), l)}"
                steps.append(
                    _step(section, l, f"A{l}", formula, sizes, batch, gradient=True, note=note)
                )
            kind = kinds[l - 1]
            if kind:
                for key, formula, returned, note in _normalization_backward(l, kind, name):
                    steps.append(
                        _step(section, l, key, formula, sizes, batch, normalization=norm,
                              gradient=True, returned=bool(returned), note=note,
                              form="staged" if returned is None else "")
                    )  # fmt: skip
                steps += _shared_steps(section, l, sizes, batch, input_gradient, l2)
                continue
            formula = f"dZ{l} = {at_layer(ACTIVATIONS[name].backward_formula, l)}"
            note = _activation_note(name)
            if rates[l - 1]:
                steps.append(_dropout_step(section, l, rates[l - 1], sizes, batch))
                formula = _before_the_mask(formula, l)
            steps.append(
                _step(section, l, f"Z{l}", formula, sizes, batch, **backward_flags, note=note)
            )
        steps += _shared_steps(section, l, sizes, batch, input_gradient, l2)
    return Derivation(
        tuple(sizes), tuple(names), loss, batch, bool(input_gradient), tuple(steps),
        l2=l2, dropout=rates if any(rates) else (), normalization=norm,
    )  # fmt: skip


def _dropout_step(section: str, l: int, rate: float, sizes: Sequence[int], m: int | str) -> Step:
    """``dFl = dAl ⊙ Ml / (1 − p)``: the forward's own mask and scale."""
    note = (
        f"inverted dropout (p = {rate:g}): the backward multiplies by the mask M{l} the "
        f"forward pass cached, never a new one, and by the same 1/(1 − p); f_{l}' then "
        f"reads F{l} = f_{l}(Z{l}), not the masked A{l}"
    )
    formula = f"dF{l} = dA{l} ⊙ M{l} / (1 − {_number(rate)})"
    return _step(section, l, f"F{l}", formula, sizes, m, gradient=True, note=note)


def _number(value: float) -> str:
    """``0.5`` as ``0.5``, a third as ``0.3333333333333333``: short, and exact."""
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


def _before_the_mask(formula: str, l: int) -> str:
    """An activation's backward step in ``dFl`` and ``Fl`` (a dropped layer's)."""
    for name in ("dA", "A"):
        formula = re.sub(
            _NOT_IN_NAME_BEFORE + f"{name}{l}" + _NOT_IN_NAME_AFTER, f"{name[:-1]}F{l}", formula
        )
    return formula


def gradient_formula(derivation: Derivation, key: str) -> str:
    """The formula of the backward step that computes ``grads[key]``."""
    return derivation.gradient_step(key).formula


def read_by(derivation: Derivation) -> dict[str, list[str]]:
    """For every cache entry (``A0``, then ``Wl``, ``Zl``, ``Al`` per layer) and
    ``Y``: the left-hand sides of the backward steps that read it."""
    entries = [
        *cache_keys(
            derivation.depth, dropout=derivation.dropout, normalization=derivation.normalization
        ),
        "Y",
    ]
    readers: dict[str, list[str]] = {entry: [] for entry in entries}
    for step in derivation.steps:
        if step.gradient:
            for entry in step.reads:
                name = step.formula.split(" = ", 1)[0]
                readers[entry].append(f"{name} ({step.form})" if step.form else name)
    return readers


_HEADINGS = {
    "forward": "Forward pass (the cache keeps A0 and Wl, Zl, Al of every layer)",
    "loss": "Loss (the mean over the m columns of the batch)",
}
# Formulas longer than this (gelu's) push their shapes further right alone.
_FORMULA_COLUMN = 40
_TEXT_WIDTH = 100


def _wrapped(text: str, indent: str) -> list[str]:
    return textwrap.wrap(text, _TEXT_WIDTH, initial_indent=indent, subsequent_indent=indent)


def render(derivation: Derivation) -> str:
    """The derivation as text: forward, loss, output layer, hidden layers, cache."""
    d = derivation
    sizes = ", ".join(map(str, d.layer_sizes))
    batch = "m columns" if d.m == "m" else f"m = {d.m} columns"
    regularized = (f"; weight decay λ = {d.l2:g}" if d.l2 else "") + (
        f"; dropout {', '.join(f'{p:g}' for p in d.dropout[:-1])}" if d.dropout else ""
    )
    lines = [
        f"Network [{sizes}]: activations {', '.join(d.activations)}; loss {d.loss}"
        f"{regularized}; a batch of {batch}, one sample per column"
    ]
    if d.normalization:
        kinds = ", ".join(str(kind) for kind in d.normalization[:-1])
        lines[0] += f"; normalization per hidden layer: {kinds} (eps = {EPS:g})"
    width = min(max(len(step.formula) for step in d.steps), _FORMULA_COLUMN)
    shape_width = min(max(len(step.shape_text) for step in d.steps), _FORMULA_COLUMN)
    current = None
    for step in d.steps:
        heading = _HEADINGS.get(step.section)
        if step.section == "forward" and heading is not None:
            if d.dropout:
                heading = f"{heading[:-1]}, and Fl, Ml of a dropped one)"
            if d.normalization:
                heading = (
                    f"{heading[:-1]}; a normalized layer's gammal, mul, varl, inv_stdl, "
                    "Zhatl, Nl too)"
                )
        if step.section in ("output", "hidden"):
            kind = "Output layer" if step.section == "output" else "Hidden layer"
            heading = f"{kind} {step.layer} ({d.activations[step.layer - 1]})"
            if d.normalization and d.normalization[step.layer - 1]:
                heading = heading[:-1] + f", {d.normalization[step.layer - 1]} normalization)"
        if heading is not None and heading != current:
            lines += ["", heading]
            current = heading
        if step.note:
            lines += _wrapped(step.note, "  # ")
        reads = f"  reads {', '.join(step.reads)}" if step.gradient and step.reads else ""
        line = f"  {step.formula:<{width}}  {step.shape_text:<{shape_width}}{reads}"
        lines.append(line.rstrip())
    lines += ["", *_wrapped(_output_summary(d), "")]
    lines += ["", "What the backward pass reads from the cache (the required matrices):"]
    unread = []
    readers_of = read_by(d)
    pad = max(4, *map(len, readers_of))
    for entry, readers in readers_of.items():
        if readers:
            what = " (the targets, given to backward)" if entry == "Y" else ""
            lines.append(f"  {entry:<{pad}} read by {', '.join(readers)}{what}")
        else:
            unread.append(entry)
    if unread:
        lines.append(f"  cached but not read by this backward pass: {', '.join(unread)}")
    lines.append("  Bl is not cached: no backward step reads it.")
    if not d.input_gradient:
        lines.append("  dA0 = W1ᵀ · dZ1 is computed only with backward(..., input_gradient=True).")
    return "\n".join(lines)


def _output_summary(d: Derivation) -> str:
    """Where the output layer differs from the hidden ones."""
    L, spec = d.depth, LOSSES[d.loss]
    if d.fused:
        start = (
            f"The output layer differs from the hidden ones only in dZ{L}: the canonical pair "
            f"{d.activations[-1]} + {d.loss} gives dZ{L} = {at_layer(spec.fused_formula, L)} "
            "directly"
        )
    else:
        start = (
            f"The output layer differs from the hidden ones only in where it starts: "
            f"dA{L} = {at_layer(_dA_formula(spec), L)} comes from the loss, then dZ{L} follows "
            f"from {d.activations[-1]}'s backward step as in a hidden layer"
        )
    if L == 1:
        return f"{start}.  (This network has no hidden layer.)"
    return (
        f"{start}; a hidden layer l gets dAl from the layer above and steps back through "
        "its activation.  dWl, dBl and dA(l-1) have the same form in every layer."
    )


# --- one layer function's derivation (``manual-bp explain --layer``) --------------------
#
# The layer functions of issue 27 carry their derivation as text, one ``DERIVATION`` per
# module (a family: conv; max and average pooling; spatial batch and group norm; the RNN
# and LSTM, step and sequence; word embedding; temporal affine and softmax loss).  A
# layer is named as ``check_layer`` names its kind; the text is its module's, whole.

_LAYER_FUNCTIONS: dict[str, tuple[ModuleType, tuple[str, ...]]] = {
    "conv": (convolution, ("forward", "backward")),
    "max_pool": (pooling, ("max_forward", "max_backward")),
    "avg_pool": (pooling, ("average_forward", "average_backward")),
    "spatial_batchnorm": (
        spatial_normalization,
        ("spatial_batchnorm_forward", "spatial_batchnorm_backward"),
    ),
    "spatial_groupnorm": (spatial_normalization, ("group_norm_forward", "group_norm_backward")),
    "rnn_step": (recurrent, ("rnn_step_forward", "rnn_step_backward")),
    "rnn": (recurrent, ("rnn_forward", "rnn_backward")),
    "lstm_step": (recurrent, ("lstm_step_forward", "lstm_step_backward")),
    "lstm": (recurrent, ("lstm_forward", "lstm_backward")),
    "word_embedding": (embedding, ("forward", "backward")),
    "temporal_affine": (temporal, ("affine_forward", "affine_backward")),
    "temporal_softmax_loss": (temporal, ("softmax_loss",)),
}
LAYERS = tuple(_LAYER_FUNCTIONS)
"""The layers ``layer_derivation`` explains, by their ``check_layer`` kind names."""


def layer_derivation(layer: str) -> str:
    """The derivation of one layer function, as ``manual-bp explain --layer`` prints it.

    ``layer`` is a ``check_layer`` kind name (``LAYERS``).  The text is a line naming
    manual_bp's functions, then their module's ``DERIVATION``: the whole family's, so
    ``rnn`` prints the RNN's and the LSTM's, one step and a sequence.

    >>> print(layer_derivation("max_pool").splitlines()[0])
    max_pool: manual_bp.pooling.max_forward, manual_bp.pooling.max_backward
    >>> layer_derivation("conv2d")
    Traceback (most recent call last):
    ...
    ValueError: layer: expected one of conv, max_pool, ..., got 'conv2d'; did you mean conv?
    """
    if not isinstance(layer, str):
        raise TypeError(f"layer: expected a layer name (a str), got {type(layer).__name__}")
    if layer not in _LAYER_FUNCTIONS:
        close = difflib.get_close_matches(layer, LAYERS, n=1, cutoff=0.6)
        raise ValueError(
            f"layer: expected one of {', '.join(LAYERS)}, got {layer!r}"
            + (f"; did you mean {close[0]}?" if close else "")
        )
    module, functions = _LAYER_FUNCTIONS[layer]
    named = ", ".join(f"{module.__name__}.{function}" for function in functions)
    return f"{layer}: {named}\n\n{module.DERIVATION.rstrip()}"


# --- one research quantity's derivation (``manual-bp explain --quantity``) --------------
#
# Issue 28's quantities, named after the functions that compute them.  Each module
# carries one ``DERIVATION`` for its family (per-example gradients, norms and variance;
# DP-SGD; the Hessian- and Gauss-Newton-vector products and the GGN's diagonal), and a
# quantity prints its module's text, whole, after a line naming its functions.

_QUANTITIES: dict[str, tuple[ModuleType, tuple[str, ...]]] = {
    "per_example_gradients": (per_example, ("per_example_gradients",)),
    "per_example_norms": (per_example, ("per_example_norms",)),
    "gradient_variance": (per_example, ("gradient_variance",)),
    "dp_sgd": (dp_sgd, ("clipped_mean", "DPSGD")),
    "hessian_vector_product": (curvature, ("hessian_vector_product",)),
    "ggn_vector_product": (curvature, ("ggn_vector_product",)),
    "ggn_diagonal": (curvature, ("ggn_diagonal",)),
}
QUANTITIES = tuple(_QUANTITIES)
"""The quantities ``quantity_derivation`` explains, named after their functions."""

# Common short names, for the did-you-mean only: each concept has one name.
_SHORT_NAMES = {
    "per_example": "per_example_gradients",
    "norms": "per_example_norms",
    "variance": "gradient_variance",
    "dpsgd": "dp_sgd",
    "hvp": "hessian_vector_product",
    "hessian": "hessian_vector_product",
    "ggn": "ggn_vector_product",
    "gvp": "ggn_vector_product",
    "gauss_newton": "ggn_vector_product",
    "diag_ggn": "ggn_diagonal",
}


def quantity_derivation(quantity: str) -> str:
    """The derivation of one research quantity, as ``manual-bp explain --quantity`` prints it.

    ``quantity`` is one of ``QUANTITIES``, the name of the function that computes
    it (``dp_sgd`` for ``clipped_mean`` and ``DPSGD``).  The text is a line naming
    manual_bp's functions, then their module's ``DERIVATION``: the whole family's, so
    ``per_example_norms`` prints the per-example gradients' too (the norms are
    computed from the same backward pass), and ``ggn_diagonal`` the R-operator's.

    >>> print(quantity_derivation("dp_sgd").splitlines()[0])
    dp_sgd: manual_bp.dp_sgd.clipped_mean, manual_bp.dp_sgd.DPSGD
    >>> quantity_derivation("hvp")
    Traceback (most recent call last):
    ...
    ValueError: quantity: expected one of ..., got 'hvp'; did you mean hessian_vector_product?
    """
    if not isinstance(quantity, str):
        raise TypeError(
            f"quantity: expected a quantity name (a str), got {type(quantity).__name__}"
        )
    if quantity not in _QUANTITIES:
        short = _SHORT_NAMES.get(quantity.strip().lower().replace("-", "_"))
        close = [short] if short else difflib.get_close_matches(quantity, QUANTITIES, n=1)
        raise ValueError(
            f"quantity: expected one of {', '.join(QUANTITIES)}, got {quantity!r}"
            + (f"; did you mean {close[0]}?" if close else "")
        )
    module, functions = _QUANTITIES[quantity]
    named = ", ".join(f"{module.__name__}.{function}" for function in functions)
    return f"{quantity}: {named}\n\n{module.DERIVATION.rstrip()}"
