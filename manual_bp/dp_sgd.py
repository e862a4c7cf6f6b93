"""DP-SGD (Abadi et al. 2016): clip each example's gradient, average, add noise.

With the per-example gradients ``g_i`` (``manual_bp.per_example``; every
parameter together, ``i = 1..m``), a clip norm ``C > 0`` and a noise
multiplier ``σ >= 0``::

    ||g_i||  = sqrt(sum over every parameter θ of ||g_i[θ]||_F^2)
    s_i      = min(1, C / ||g_i||)  = C / max(||g_i||, C)        (1 for g_i = 0)
    gbar     = (1/m) sum_i s_i g_i                                 clipped_mean
    g~       = gbar + (σ C / m) ξ,   ξ ~ N(0, 1) per entry         DPSGD.private_gradient
    θ, state ← optimizer.update(g~, state, θ)                      DPSGD.update

``C / max(||g_i||, C)`` is ``min(1, C / ||g_i||)`` with no division by zero
(``C > 0``) and exactly 1 for ``||g_i|| <= C`` (``C / C``).  Each clipped
``s_i g_i`` has norm ``<= C``, so one example moves the sum by at most ``C``
and ``gbar`` by ``C / m``: the noise's standard deviation ``σ C / m`` is
``σ`` times that sensitivity.

``DPSGD`` wraps any ``manual_bp.optimizers`` optimizer in its interface
(frozen hyperparameters, pure ``init`` / ``update``), with one difference:
``update`` takes the per-example gradients (a dict of ``(m, ...)`` arrays)
instead of the mean.  Its state is plain data: the wrapped optimizer's state
and the state of a NumPy ``Generator`` (PCG64, ``bit_generator.state``, a
dict of ints), seeded by ``init``; the same seed gives the same steps, and a
saved state resumes them.  The noise: ``ξ`` is drawn in float64 with
``Generator.standard_normal(shape)``, one array per parameter, the
parameters' keys in sorted order; ``(σ C / m) ξ`` is computed in float64 and
rounded to the parameter's dtype before it is added.  The generator
advances by the same draws whatever ``σ`` is; ``σ = 0`` adds nothing, so its
gradient is ``clipped_mean``'s exactly.

No array is written in place; float32 gradients give float32 results.
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from manual_bp.optimizers import SGD, Optimizer
from manual_bp.validation import check_positive_float

Array = np.ndarray
State = dict[str, Any]

__all__ = ["DPSGD", "clipped_mean"]


DERIVATION = """\
DP-SGD (Abadi et al. 2016): clip each example's gradient, average, add noise.

g_i is example i's gradient, every parameter together (per_example_gradients:
dWl_i (m, nl, n(l-1)), dBl_i (m, nl, 1)); C > 0 is the clip norm and σ >= 0 the
noise multiplier.

1. Norm, over every parameter θ = W1, B1, ..., WL, BL:
     ‖g_i‖ = √(Σ_θ ‖g_i[θ]‖_F²)

2. Clip: scale the example's whole gradient so that its norm is at most C:
     s_i = min(1, C / ‖g_i‖) = C / max(‖g_i‖, C)          (1 when g_i = 0)
     ‖s_i g_i‖ <= C

   Opacus adds ε = 1e-6 to the norm, s_i = min(1, C / (‖g_i‖ + ε)): a
   convention, the bound still holds (manual-bp check --quantity dp_sgd
   --clip-eps 1e-6 checks a step written that way).

3. Mean over the batch (clipped_mean):
     gbar[θ] = (1/m) Σ_i s_i g_i[θ]                        the shape of θ

4. Noise (DPSGD.private_gradient), ξ ~ N(0, 1) per entry:
     g~[θ] = gbar[θ] + (σ C / m) ξ[θ]

   One example moves Σ_i s_i g_i by at most C, so gbar by at most C / m: the
   noise's standard deviation σ C / m is σ times that sensitivity.

5. Step (DPSGD.update): the wrapped optimizer's update with g~ for the mean
   gradient:
     θ, state ← optimizer.update(g~, state, θ)

Without clipping (C ≥ every ‖g_i‖) and without noise (σ = 0), g~ is the mean
gradient that network.backward returns.
"""
"""The derivation, as ``manual-bp explain --quantity`` prints it: plain text in the
seed's notation, layer by layer."""


def clipped_mean(per_example: Mapping[str, Array], clip: float) -> dict[str, Array]:
    """The mean over the batch of the per-example gradients, each clipped to norm ``clip``.

    Parameters
    ----------
    per_example : dict of arrays ``(m, ...)``, one per parameter (``Wl``
        ``(m, nl, n(l-1))``, ``Bl`` ``(m, nl, 1)`` from
        ``manual_bp.per_example.per_example_gradients``; any keys), one float
        dtype, the same ``m >= 1``
    clip : ``C > 0``

    Returns
    -------
    dict with the same keys, each ``(...)`` (the first axis averaged away),
    in the input's dtype::

        s_i = C / max(||g_i||, C),   ||g_i||^2 = sum_θ ||g_i[θ]||_F^2
        result[θ] = (1/m) sum_i s_i g_i[θ]

    The norm is over every parameter together (the whole gradient of example
    ``i``), never per parameter.
    """
    C = check_positive_float(clip, "clip")
    checked, m, _ = _check_per_example(per_example, "per_example")
    return _clipped_mean(checked, C, m)


def _clipped_mean(per_example: Mapping[str, Array], C: float, m: int) -> dict[str, Array]:
    squared = sum(
        np.einsum("ij,ij->i", g.reshape(m, -1), g.reshape(m, -1)) for g in per_example.values()
    )
    norms = np.sqrt(squared)  # (m,)
    scale = C / np.maximum(norms, C)  # min(1, C / ||g_i||), 1 exactly below C, no 0 division
    return {key: np.tensordot(scale, g, axes=(0, 0)) / m for key, g in per_example.items()}


def _check_per_example(
    per_example: object, name: str, like: Mapping[str, Array] | None = None
) -> tuple[dict[str, Array], int, np.dtype]:
    """A non-empty dict of float arrays of one dtype, ``(m, ...)`` with one ``m >= 1``;
    with ``like`` (the params), its keys, ``(m, *shape)`` and dtype."""
    if not isinstance(per_example, Mapping):
        raise TypeError(
            f"{name}: expected a dict of per-example arrays (m, ...), "
            f"got {type(per_example).__name__}"
        )
    if not per_example:
        raise ValueError(f"{name}: expected at least one parameter's gradients, got an empty dict")
    if like is not None and set(per_example) != set(like):
        raise ValueError(
            f"{name}: expected the keys of params {sorted(like)}, "
            f"got {sorted(map(str, per_example))}"
        )
    checked: dict[str, Array] = {}
    m = dtype = None
    for key, value in per_example.items():
        array = np.asarray(value)
        if array.dtype not in (np.float32, np.float64):
            raise TypeError(f"{name}[{key!r}]: expected float32 or float64, got {array.dtype}")
        if dtype is None:
            dtype = array.dtype if like is None else np.asarray(like[key]).dtype
        if array.dtype != dtype:
            raise TypeError(
                f"{name}[{key!r}]: expected dtype {dtype} "
                f"({'that of params' if like is not None else 'one dtype for every key'}), "
                f"got {array.dtype}"
            )
        if array.ndim < 1 or array.shape[0] < 1:
            raise ValueError(
                f"{name}[{key!r}]: expected an array (m, ...) with m >= 1 examples on axis 0, "
                f"got shape {array.shape}"
            )
        if m is None:
            m = array.shape[0]
        if array.shape[0] != m:
            raise ValueError(
                f"{name}[{key!r}]: expected m = {m} examples on axis 0 (as the other keys), "
                f"got shape {array.shape}"
            )
        if like is not None:
            expected = (m, *np.shape(like[key]))
            if array.shape != expected:
                raise ValueError(
                    f"{name}[{key!r}]: expected shape (m, *params[{key!r}].shape) = {expected}, "
                    f"got {array.shape}"
                )
        if not np.isfinite(array).all():
            raise ValueError(f"{name}[{key!r}]: expected finite values, got NaN or inf")
        checked[key] = array
    assert m is not None and dtype is not None
    return checked, m, np.dtype(dtype)


def _generator(rng_state: object) -> np.random.Generator:
    """A new PCG64 ``Generator`` set to ``rng_state`` (copied: the caller's is untouched)."""
    bit_generator = np.random.PCG64()
    try:
        bit_generator.state = copy.deepcopy(rng_state)  # type: ignore[assignment]
    except (TypeError, ValueError, KeyError) as error:
        raise ValueError(
            f"state['rng']: expected the PCG64 generator state DPSGD.init returns, got "
            f"{rng_state!r} ({error})"
        ) from None
    return np.random.Generator(bit_generator)


@dataclass(frozen=True)
class DPSGD:
    """DP-SGD around any optimizer: clip, average, add ``N(0, (σ C / m)^2)``, step.

    Attributes
    ----------
    clip : ``C > 0``, the clip norm of each example's whole gradient
    noise_multiplier : ``σ >= 0``; the noise's standard deviation is ``σ C / m``
    optimizer : the step taken on the private gradient (any
        ``manual_bp.optimizers`` optimizer; default ``SGD(learning_rate=0.1)``)

    Examples
    --------
    >>> import numpy as np
    >>> dp = DPSGD(clip=1.0, noise_multiplier=0.0, optimizer=SGD(learning_rate=1.0))
    >>> params = {"W1": np.zeros((1, 2))}
    >>> per_example = {"W1": np.array([[[3.0, 4.0]], [[0.3, 0.4]]])}  # norms 5 and 0.5
    >>> new, state = dp.update(per_example, dp.init(params, seed=0), params)
    >>> new["W1"]  # -((0.6, 0.8) + (0.3, 0.4)) / 2
    array([[-0.45, -0.6 ]])
    """

    clip: float
    noise_multiplier: float
    optimizer: Optimizer = field(default_factory=lambda: SGD(learning_rate=0.1))

    def __post_init__(self) -> None:
        object.__setattr__(self, "clip", check_positive_float(self.clip, "clip"))
        sigma = self.noise_multiplier
        if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real):
            raise TypeError(
                f"noise_multiplier: expected a float >= 0, got {type(sigma).__name__} {sigma!r}"
            )
        if not (np.isfinite(float(sigma)) and float(sigma) >= 0):
            raise ValueError(f"noise_multiplier: expected a finite float >= 0, got {sigma}")
        object.__setattr__(self, "noise_multiplier", float(sigma))
        if not isinstance(self.optimizer, Optimizer):
            raise TypeError(
                "optimizer: expected a manual_bp.optimizers optimizer (SGD, Momentum, ...), "
                f"got {type(self.optimizer).__name__} {self.optimizer!r}"
            )

    def init(self, params: Mapping[str, Array], seed: int = 0) -> State:
        """``{"optimizer": the wrapped optimizer's init(params), "rng": a seeded
        PCG64 state}``: plain data (dicts, arrays, ints)."""
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise TypeError(f"seed: expected an int >= 0, got {type(seed).__name__} {seed!r}")
        if seed < 0:
            raise ValueError(f"seed: expected an int >= 0, got {seed}")
        return {
            "optimizer": self.optimizer.init(params),
            "rng": np.random.default_rng(int(seed)).bit_generator.state,
        }

    def private_gradient(
        self,
        per_example_grads: Mapping[str, Array],
        state: Mapping[str, Any],
        params: Mapping[str, Array],
    ) -> tuple[dict[str, Array], dict[str, Any]]:
        """``(g~, the generator's next state)``: ``clipped_mean`` plus the noise.

        ``g~[θ] = gbar[θ] + dtype((σ C / m) ξ_θ)``, ``ξ_θ`` the float64 standard
        normals drawn for the keys of ``params`` in sorted order (module notes).
        """
        checked, m, _ = self._checked(per_example_grads, state, params)
        rng = _generator(state["rng"])
        mean = _clipped_mean(checked, self.clip, m)
        std = self.noise_multiplier * self.clip / m
        for key in sorted(params):
            xi = rng.standard_normal(mean[key].shape)  # float64, drawn whatever σ is
            if self.noise_multiplier:
                mean[key] = mean[key] + (std * xi).astype(mean[key].dtype)
        return mean, dict(rng.bit_generator.state)

    def update(
        self,
        per_example_grads: Mapping[str, Array],
        state: Mapping[str, Any],
        params: Mapping[str, Array],
    ) -> tuple[dict[str, Array], State]:
        """One step: ``(new_params, new_state)`` from the per-example gradients.

        Parameters
        ----------
        per_example_grads : a ``(m, *shape)`` array for every key of
            ``params`` (``manual_bp.per_example.per_example_gradients``), in
            the params' dtypes
        state : what ``init`` (or the last ``update``) returned; not modified
        params : the parameters, as the wrapped optimizer takes them
        """
        noisy, rng_state = self.private_gradient(per_example_grads, state, params)
        new_params, optimizer_state = self.optimizer.update(noisy, state["optimizer"], params)
        return new_params, {"optimizer": optimizer_state, "rng": rng_state}

    def _checked(
        self,
        per_example_grads: object,
        state: object,
        params: object,
    ) -> tuple[dict[str, Array], int, np.dtype]:
        if not isinstance(params, Mapping):
            raise TypeError(f"params: expected a dict of arrays, got {type(params).__name__}")
        if not isinstance(state, Mapping):
            raise TypeError(
                f"state: expected the dict DPSGD.init returns, got {type(state).__name__}"
            )
        if set(state) != {"optimizer", "rng"}:
            raise ValueError(
                "state: expected the keys ['optimizer', 'rng'] of DPSGD's state, "
                f"got {sorted(map(str, state))}"
            )
        return _check_per_example(per_example_grads, "per_example_grads", like=params)
