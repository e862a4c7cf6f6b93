"""The layer unit: a dense layer as one forward/backward pair over its steps.

A dense layer ``l`` is four steps, each its own forward/backward pair in its
own module (cs231n's ``*_forward -> (out, cache)`` / ``*_backward(dout, cache)``)::

    Zl = Wl A(l-1) + Bl                 manual_bp.affine          always
    Nl = gammal * Zhatl + betal         manual_bp.normalization   norm="batch" | "layer"
    Fl = f_l(Nl or Zl)                  manual_bp.activations     always
    Al = Fl ⊙ Ml / (1 − pl)             manual_bp.dropout         dropout=pl > 0

and back, in the reverse order::

    dFl = dAl ⊙ Ml / (1 − pl)           (dFl = dAl without dropout)
    dNl = f_l'(Nl)^T dFl                (dZl directly without normalization)
    dZl = the normalization's backward of dNl (closed or staged form)
    dWl, dBl, dA(l-1) from dZl          (manual_bp.affine)

``Dense`` holds what the layer is (its units, activation, normalization
and drop probability), validated once, and does its forward and backward
over the network's cache: the cache keys are the seed's, suffixed by the
layer's number (``Wl``, ``Zl``, ``Al``, ...; ``manual_bp.architecture``).
``manual_bp.network`` loops over the layers; the output layer's ``dZL``
comes from the loss (fused for the canonical pair) instead of ``dAL``.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from numbers import Real
from types import ModuleType

import numpy as np

from manual_bp import affine, dropout, normalization
from manual_bp.activations import ACTIVATIONS, Activation
from manual_bp.affine import Matmul
from manual_bp.architecture import LayerKeys
from manual_bp.validation import check_positive_int

Array = np.ndarray
_NO_SLOTS: Mapping[str, Array] = {}


@dataclass(frozen=True)
class Dense:
    """One fully connected layer of ``units`` units (see the module notes).

    >>> Dense(3, "tanh", norm="batch", dropout=0.1)
    Dense(units=3, activation='tanh', norm='batch', dropout=0.1)
    >>> Dense(3, "tahn")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: activation: expected one of ['identity', 'relu', ...], got 'tahn'
    """

    units: int
    activation: str
    norm: str | None = None
    dropout: float = 0.0

    def __post_init__(self) -> None:
        check_positive_int(self.units, "units")
        if not isinstance(self.activation, str) or self.activation not in ACTIVATIONS:
            raise ValueError(
                f"activation: expected one of {list(ACTIVATIONS)}, got {self.activation!r}"
            )
        if self.norm is not None and self.norm not in normalization.NORMALIZATIONS:
            raise ValueError(
                f"norm: expected None or one of {list(normalization.NORMALIZATIONS)}, "
                f"got {self.norm!r}"
            )
        rate = self.dropout
        if isinstance(rate, bool) or not isinstance(rate, Real) or not 0 <= float(rate) < 1:
            raise ValueError(f"dropout: expected a drop probability in [0, 1), got {rate!r}")
        object.__setattr__(self, "dropout", float(rate))

    def forward(
        self,
        A_prev: Array,
        params: Mapping[str, Array],
        l: int,
        cache: MutableMapping[str, Array],
        xp: ModuleType = np,
        *,
        taps: Mapping[str, Array] | None = None,
        running: Mapping[str, Array] | None = None,
        masks: Mapping[str, Array] | None = None,
    ) -> Array:
        """``Al`` from ``A(l-1)`` over the array namespace ``xp``: the definition.

        Writes ``Wl`` and ``Zl`` into ``cache`` (a normalized layer also
        ``gammal``, ``mul``, ``varl``, ``inv_stdl``, ``Zhatl``, ``Nl``; a
        dropped one ``Fl`` and its mask ``Ml``, read from ``masks``).  The
        caller caches the returned ``Al`` (after its own ``Al`` tap).  The
        oracle's ``taps`` are added at ``Zl`` and inside the normalization;
        inference-mode ``running`` statistics replace the batch's.
        """
        W = params[f"W{l}"]
        Z = affine.forward(A_prev, W, params[f"B{l}"])
        if taps is not None:
            Z = Z + taps[f"Z{l}"]
        cache[f"W{l}"], cache[f"Z{l}"] = W, Z
        if self.norm:
            Z = self._normalize(params, Z, l, xp, taps, running, cache)
        A = ACTIVATIONS[self.activation].forward(Z, xp)
        if self.dropout:
            M = xp.asarray(masks[f"M{l}"], dtype=A.dtype)  # type: ignore[index]  # checked by network.forward
            cache[f"F{l}"], cache[f"M{l}"] = A, M
            A = dropout.apply(A, M, self.dropout)
        return A

    def _normalize(
        self,
        params: Mapping[str, Array],
        Z: Array,
        l: int,
        xp: ModuleType,
        taps: Mapping[str, Array] | None,
        running: Mapping[str, Array] | None,
        cache: MutableMapping[str, Array],
    ) -> Array:
        """``Nl = gammal * Zhatl + betal``, its intermediates cached."""
        kind = self.norm
        assert kind is not None
        statistics = None
        if running is not None and kind == "batch":
            statistics = (running[f"running_mean{l}"], running[f"running_var{l}"])
        layer_taps = None
        if taps is not None:
            layer_taps = {name: taps[f"{name}{l}"] for name in ("mu", "var", "Zhat", "N")}
        gamma = params[f"gamma{l}"]
        values = normalization.normalize(
            Z, gamma, params[f"beta{l}"], kind, xp, statistics=statistics, taps=layer_taps
        )
        cache[f"gamma{l}"] = gamma
        for name, value in values.items():
            cache[f"{name}{l}"] = value
        return values["N"]

    def backward(
        self,
        dA: Array | None,
        cache: Mapping[str, Array],
        key: LayerKeys,
        grads: MutableMapping[str, Array],
        dZ: Array | None = None,
        input_gradient: bool = True,
        staged: bool = False,
        matmul: Matmul = np.matmul,
        out: Mapping[str, Array] | None = None,
    ) -> None:
        """Layer ``l``'s gradients from ``dAl`` (or from ``dZl`` when given:
        the output layer's, from the loss), written into ``grads``.

        Writes ``Zl``, ``Wl``, ``Bl`` and, with ``input_gradient``,
        ``A(l-1)`` (a normalized layer also ``Nl``, ``gammal``, ``betal``,
        ``Zhatl``, and ``varl``, ``mul`` when ``staged``).  ``out`` holds
        arrays to write into, by key (``manual_bp.network.new_arrays``).
        """
        slots = out if out is not None else _NO_SLOTS
        if dZ is None:  # dAl -> dZl: through the mask, f_l' and the normalization
            assert dA is not None, "Dense.backward takes dAl, or dZl when the loss gives it"
            activation = ACTIVATIONS[self.activation]
            Z, A = cache[key.Z], cache[key.A]
            if self.dropout:  # the forward's own mask; f_l' reads Fl = f_l(Zl)
                dA, A = dropout.backward(dA, cache[f"M{key.l}"], self.dropout), cache[f"F{key.l}"]
            if self.norm:
                dZ = self._normalization_backward(activation, dA, A, grads, cache, key, staged)
            else:
                dZ = activation.backward(dA, Z, A, out=slots.get(key.Z))
        grads[key.Z] = dZ
        dW, dB, dA_prev = affine.backward(
            dZ, cache[key.A_prev], cache[key.W] if input_gradient else None, matmul,
            slots.get(key.W), slots.get(key.B), slots.get(key.A_prev),
        )  # fmt: skip
        grads[key.W], grads[key.B] = dW, dB
        if dA_prev is not None:
            grads[key.A_prev] = dA_prev

    def _normalization_backward(
        self,
        activation: Activation,
        dA: Array,
        A: Array,
        grads: MutableMapping[str, Array],
        cache: Mapping[str, Array],
        key: LayerKeys,
        staged: bool,
    ) -> Array:
        """``dNl = f_l'(Nl)^T dAl``, then ``dgammal``, ``dbetal`` and ``dZl`` (either form)."""
        kind = self.norm
        assert kind is not None
        l = key.l
        dN = activation.backward(dA, cache[f"N{l}"], A)
        grads[f"N{l}"] = dN
        grads[f"gamma{l}"], grads[f"beta{l}"] = normalization.parameter_gradients(
            dN, cache[f"Zhat{l}"]
        )
        backward = normalization.staged_backward if staged else normalization.closed_backward
        dZ, intermediates = backward(dN, cache, l, kind)
        for name, value in intermediates.items():
            grads[f"{name}{l}"] = value
        return dZ
