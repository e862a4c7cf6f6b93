"""Optimizers written by hand: SGD, momentum, RMSProp, Adam and AdamW.

Every optimizer is a frozen record of its hyperparameters with two pure
functions, the form optax uses::

    state = optimizer.init(params)
    new_params, new_state = optimizer.update(grads, state, params)

``params`` and ``grads`` are dicts of arrays with the same keys and shapes
(``W1`` (n1, n0), ``B1`` (n1, 1), ... for a ``DNN``; any flat dict works).
``state`` is a dict: ``"t"`` the number of steps taken (RMSProp, Adam and
AdamW; SGD and momentum keep none), and one dict of arrays per accumulator
(``"m"`` the first moment or velocity, ``"v"`` the second moment), keyed like
``params``.  No array is
written in place: every update returns new arrays, and the dtype of each
parameter (float32 or float64) is kept by its state and its new value.

Notation: for one parameter ``θ`` (``Wl`` or ``Bl``) with gradient ``g = dθ``
at step ``t = 1, 2, ...``, learning rate ``α``::

    SGD        θ ← θ − α g
    Momentum   m ← μ m + (1 − τ) g                 τ = dampening (optax: 0)
               θ ← θ − α m                         heavy ball
               θ ← θ − α (g + μ m)                 nesterov=True
    RMSProp    v ← ρ v + (1 − ρ) g²                v starts at initial_scale
               v̂ = v / (1 − ρ^t) if bias_correction else v
               θ ← θ − α g / √(v̂ + ε)              eps_in_sqrt=True (optax)
               θ ← θ − α g / (√v̂ + ε)              eps_in_sqrt=False (PyTorch, the course)
    Adam       m ← β1 m + (1 − β1) g,  v ← β2 v + (1 − β2) g²
               m̂ = m / (1 − β1^t),  v̂ = v / (1 − β2^t)
               θ ← θ − α m̂ / (√(v̂ + ε_root) + ε)
    AdamW      θ ← θ − α (m̂ / (√(v̂ + ε_root) + ε) + λ θ)    decay_scaled_by_lr=True

Each convention on which libraries differ is an explicit keyword, and its
default is optax's (``manual_bp_reference.optimizer_oracle`` builds the optax chain
of every choice): see each class.

Every rule is written once, over ``ops`` (``sqrt`` and the bias correction
``1 − β^t``): ``NUMPY_OPS`` runs it, and ``manual_bp_reference.optimizer_tolerance``
runs the same rule on error bounds to derive the tolerance of a step.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np

from manual_bp.validation import check_positive_float

Array = np.ndarray
State = dict[str, Any]

NUMPY_OPS = SimpleNamespace(sqrt=np.sqrt, correction=lambda decay, t: 1.0 - decay**t)


def _real(value: object, name: str, low: float, high: float, *, closed_high: bool) -> float:
    """``value`` as a float in ``[low, high]`` (``[low, high)`` unless ``closed_high``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a float, got {type(value).__name__} {value!r}")
    value = float(value)
    inside = low <= value <= high if closed_high else low <= value < high
    if not (math.isfinite(value) and inside):
        interval = f"[{low}, {high}]" if closed_high else f"[{low}, {high})"
        raise ValueError(f"{name}: expected a finite float in {interval}, got {value}")
    return value


def _flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return value


@dataclass(frozen=True)
class Optimizer:
    """The common part: validation, ``init`` and ``update`` over the keys.

    A subclass lists its accumulators in ``SLOTS`` (each initialised to
    ``initial_value(slot)``), says whether it counts steps (``COUNTS``), and
    writes ``rule``: one parameter's step, over ``ops``.
    """

    learning_rate: float

    name: ClassVar[str] = ""
    SLOTS: ClassVar[tuple[str, ...]] = ()
    # Convention keywords: the ones that are not plain hyperparameters.
    CONVENTIONS: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "learning_rate", check_positive_float(self.learning_rate, "learning_rate")
        )

    @property
    def counts_steps(self) -> bool:
        """Whether the state holds the step count ``t``."""
        return True

    def conventions(self) -> dict[str, object]:
        """The convention keywords and their values, e.g. ``{"eps_in_sqrt": True}``."""
        return {name: getattr(self, name) for name in self.CONVENTIONS}

    def alternatives(self) -> dict[str, list[tuple[object, dict[str, Any]]]]:
        """For each convention another implementation may follow, its values (this
        optimizer's own first) and the field changes that give each: what
        ``manual_bp_reference.optimizer_check`` tries when a step disagrees."""
        return {}

    def describe(self, keyword: str, value: object) -> str:
        """What ``keyword=value`` does, in words, with its optax (or other) name."""
        return f"uses {keyword}={value!r}"

    def hyperparameters(self) -> dict[str, Any]:
        """Every field: learning rate, hyperparameters and conventions."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    def replace(self, **changes: Any) -> Optimizer:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def initial_value(self, slot: str) -> float:
        return 0.0

    def decays(self, key: str) -> bool:
        """Whether ``key`` gets a weight decay in the rule (only AdamW's do)."""
        return False

    def decay_groups(self, keys: list[str]) -> dict[str, list[str]]:
        """The keys split into those the rule decays and the rest: within a
        group the rule treats every entry alike (every rule is elementwise)."""
        return {
            "decayed": [key for key in keys if self.decays(key)],
            "kept": [key for key in keys if not self.decays(key)],
        }

    def init(self, params: Mapping[str, Array]) -> State:
        """The state before the first step: ``t = 0`` and every accumulator filled."""
        checked = _check_arrays(params, "params")
        state: State = {"t": 0} if self.counts_steps else {}
        for slot in self.SLOTS:
            fill = self.initial_value(slot)
            state[slot] = {key: np.full_like(value, fill) for key, value in checked.items()}
        return state

    def update(
        self, grads: Mapping[str, Array], state: Mapping[str, Any], params: Mapping[str, Array]
    ) -> tuple[dict[str, Array], State]:
        """One step: ``(new_params, new_state)``, all new arrays."""
        params = _check_arrays(params, "params")
        grads = _check_like(grads, params, "grads")
        t = self._check_state(state, params) + 1
        new_params: dict[str, Array] = {}
        new_slots: dict[str, dict[str, Array]] = {slot: {} for slot in self.SLOTS}
        for key, theta in params.items():
            slots = {slot: state[slot][key] for slot in self.SLOTS}
            new_theta, updated = self.rule(grads[key], theta, slots, t, key, NUMPY_OPS)
            new_params[key] = np.asarray(new_theta, dtype=theta.dtype)
            for slot in self.SLOTS:
                new_slots[slot][key] = np.asarray(updated[slot], dtype=theta.dtype)
        new_state: State = {"t": t} if self.counts_steps else {}
        new_state.update(new_slots)
        return new_params, new_state

    def rule(
        self, g: Any, theta: Any, slots: Mapping[str, Any], t: int, key: str, ops: Any
    ) -> tuple[Any, dict[str, Any]]:
        """One parameter's step: ``(new θ, new accumulators)``."""
        raise NotImplementedError

    def _check_state(self, state: object, params: Mapping[str, Array]) -> int:
        """The step count ``t`` of a valid state (0 when the rule keeps none)."""
        if not isinstance(state, Mapping):
            raise TypeError(
                f"state: expected the dict returned by {self.name}.init, got {type(state).__name__}"
            )
        expected = ({"t"} if self.counts_steps else set()) | set(self.SLOTS)
        if set(state) != expected:
            raise ValueError(
                f"state: expected the keys {sorted(expected)} of {self.name}'s state, "
                f"got {sorted(map(str, state))}"
            )
        for slot in self.SLOTS:
            _check_like(state[slot], params, f"state[{slot!r}]")
        if not self.counts_steps:
            return 0
        t = state["t"]
        if isinstance(t, bool) or not isinstance(t, numbers.Integral) or t < 0:
            raise ValueError(f"state['t']: expected the step count, an int >= 0, got {t!r}")
        return int(t)


def _check_arrays(arrays: object, name: str) -> dict[str, Array]:
    """A dict of float32/float64 arrays (not converted, not copied)."""
    if not isinstance(arrays, Mapping):
        raise TypeError(f"{name}: expected a dict of arrays, got {type(arrays).__name__}")
    checked = {}
    for key, value in arrays.items():
        array = np.asarray(value)
        if array.dtype not in (np.float32, np.float64):
            raise TypeError(f"{name}[{key!r}]: expected float32 or float64, got {array.dtype}")
        checked[key] = array
    return checked


def _check_like(arrays: object, params: Mapping[str, Array], name: str) -> dict[str, Array]:
    """A dict with the keys, shapes and dtypes of ``params``: no broadcasting, no casting."""
    checked = _check_arrays(arrays, name)
    if set(checked) != set(params):
        raise ValueError(f"{name}: expected the keys {sorted(params)}, got {sorted(checked)}")
    for key, array in checked.items():
        if array.shape != params[key].shape:
            raise ValueError(
                f"{name}[{key!r}]: expected shape {params[key].shape}, got {array.shape}"
            )
        if array.dtype != params[key].dtype:
            raise TypeError(
                f"{name}[{key!r}]: expected dtype {params[key].dtype} (that of params), "
                f"got {array.dtype}"
            )
    return checked


@dataclass(frozen=True)
class SGD(Optimizer):
    """Plain gradient descent: ``θ ← θ − α g``.  No state (optax ``sgd``).

    Examples
    --------
    >>> import numpy as np
    >>> sgd = SGD(learning_rate=0.1)
    >>> params = {"W1": np.array([[1.0, 2.0]])}
    >>> new, state = sgd.update({"W1": np.array([[10.0, -10.0]])}, sgd.init(params), params)
    >>> new["W1"], state
    (array([[0., 3.]]), {})
    """

    name: ClassVar[str] = "sgd"

    @property
    def counts_steps(self) -> bool:
        return False

    def rule(self, g, theta, slots, t, key, ops):
        return theta - self.learning_rate * g, {}


@dataclass(frozen=True)
class Momentum(Optimizer):
    """SGD with momentum (optax ``sgd(momentum=μ, nesterov=...)``)::

        m ← μ m + (1 − τ) g          m starts at 0
        θ ← θ − α m                  heavy ball (nesterov=False)
        θ ← θ − α (g + μ m)          Nesterov, with the new m

    Conventions
    -----------
    dampening : τ, default 0 (optax, PyTorch's default).  ``dampening=μ`` is
        the course's exponential average ``m ← μ m + (1 − μ) g``.  optax has
        no dampening; its oracle scales the gradient by ``1 − τ`` before
        ``optax.trace`` (the same sum), and a property checks the linearity
        this rests on.  PyTorch, unlike this rule, skips the dampening on the
        first step (its buffer starts as ``g``), and refuses Nesterov with
        dampening, as this class does.
    nesterov : the look-ahead form, as optax and PyTorch write it.

    The course's ``v ← μ v − α g; θ ← θ + v`` is the heavy ball with
    ``v = −α m`` (the same steps for a constant α, another state).
    """

    momentum: float = 0.9
    nesterov: bool = False
    dampening: float = 0.0

    name: ClassVar[str] = "momentum"
    SLOTS: ClassVar[tuple[str, ...]] = ("m",)
    CONVENTIONS: ClassVar[tuple[str, ...]] = ("nesterov", "dampening")

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(
            self, "momentum", _real(self.momentum, "momentum", 0.0, 1.0, closed_high=False)
        )
        object.__setattr__(self, "nesterov", _flag(self.nesterov, "nesterov"))
        object.__setattr__(
            self, "dampening", _real(self.dampening, "dampening", 0.0, 1.0, closed_high=True)
        )
        if self.nesterov and self.dampening:
            raise ValueError(
                f"dampening: Nesterov momentum needs dampening=0 (as in PyTorch), "
                f"got {self.dampening}"
            )

    @property
    def counts_steps(self) -> bool:
        return False

    def alternatives(self) -> dict[str, list[tuple[object, dict[str, Any]]]]:
        options: dict[str, list[tuple[object, dict[str, Any]]]] = {}
        if not self.nesterov:  # PyTorch refuses Nesterov with dampening
            taus = dict.fromkeys([self.dampening, 0.0, self.momentum])
            options["dampening"] = [(tau, {"dampening": tau}) for tau in taus]
        if not self.dampening:
            options["nesterov"] = [(v, {"nesterov": v}) for v in (self.nesterov, not self.nesterov)]
        return options

    def describe(self, keyword: str, value: object) -> str:
        if keyword == "nesterov":
            return (
                "steps along g + μ m (optax nesterov=True)"
                if value
                else "steps along m, the heavy ball (optax nesterov=False)"
            )
        if keyword == "dampening":
            return (
                f"damps the gradient: m ← μ m + (1 − τ) g with τ = {value:g} "
                "(PyTorch dampening; optax has none)"
                if value
                else "adds the whole gradient: m ← μ m + g (no dampening, as optax)"
            )
        return super().describe(keyword, value)

    def rule(self, g, theta, slots, t, key, ops):
        m = self.momentum * slots["m"] + (1.0 - self.dampening) * g
        direction = g + self.momentum * m if self.nesterov else m
        return theta - self.learning_rate * direction, {"m": m}


@dataclass(frozen=True)
class RMSProp(Optimizer):
    """RMSProp (optax ``rmsprop``, without its centered and momentum options)::

        v ← ρ v + (1 − ρ) g²                 v starts at initial_scale
        v̂ = v / (1 − ρ^t)                    bias_correction=True; else v̂ = v
        θ ← θ − α g / √(v̂ + ε)               eps_in_sqrt=True
        θ ← θ − α g / (√v̂ + ε)               eps_in_sqrt=False

    Conventions
    -----------
    eps_in_sqrt : default True (optax).  False puts ε outside the root, as
        PyTorch and the course (cs231n ``rmsprop``) do.
    initial_scale : the starting v, default 0 (optax, PyTorch); TF1 uses 1.
    bias_correction : divide v by ``1 − ρ^t``, default False (optax).
    """

    decay: float = 0.9
    eps: float = 1e-8
    eps_in_sqrt: bool = True
    initial_scale: float = 0.0
    bias_correction: bool = False

    name: ClassVar[str] = "rmsprop"
    SLOTS: ClassVar[tuple[str, ...]] = ("v",)
    CONVENTIONS: ClassVar[tuple[str, ...]] = ("eps_in_sqrt", "initial_scale", "bias_correction")

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "decay", _real(self.decay, "decay", 0.0, 1.0, closed_high=False))
        object.__setattr__(self, "eps", _real(self.eps, "eps", 0.0, math.inf, closed_high=False))
        object.__setattr__(self, "eps_in_sqrt", _flag(self.eps_in_sqrt, "eps_in_sqrt"))
        object.__setattr__(
            self,
            "initial_scale",
            _real(self.initial_scale, "initial_scale", 0.0, math.inf, closed_high=False),
        )
        object.__setattr__(self, "bias_correction", _flag(self.bias_correction, "bias_correction"))

    def initial_value(self, slot: str) -> float:
        return self.initial_scale

    def alternatives(self) -> dict[str, list[tuple[object, dict[str, Any]]]]:
        own_sqrt, own_bias = self.eps_in_sqrt, self.bias_correction
        return {
            "eps_in_sqrt": [(v, {"eps_in_sqrt": v}) for v in (own_sqrt, not own_sqrt)],
            "bias_correction": [(v, {"bias_correction": v}) for v in (own_bias, not own_bias)],
        }

    def describe(self, keyword: str, value: object) -> str:
        if keyword == "eps_in_sqrt":
            return (
                "puts eps inside the sqrt: √(v̂ + ε) (optax eps_in_sqrt=True)"
                if value
                else "puts eps outside the sqrt: √v̂ + ε (optax eps_in_sqrt=False; PyTorch, the "
                "course)"
            )
        if keyword == "initial_scale":
            where = {0.0: "; PyTorch", 1.0: "; TF1"}.get(float(value), "")  # type: ignore[arg-type]  # a number
            return f"starts the accumulator v at {value:g} (optax initial_scale={value:g}{where})"
        if keyword == "bias_correction":
            return (
                "divides v by 1 − ρ^t (optax bias_correction=True)"
                if value
                else "does not divide v by 1 − ρ^t (optax bias_correction=False)"
            )
        return super().describe(keyword, value)

    def rule(self, g, theta, slots, t, key, ops):
        v = self.decay * slots["v"] + (1.0 - self.decay) * (g * g)
        v_hat = v / ops.correction(self.decay, t) if self.bias_correction else v
        if self.eps_in_sqrt:
            denominator = ops.sqrt(v_hat + self.eps)
        else:
            denominator = ops.sqrt(v_hat) + self.eps
        return theta - self.learning_rate * (g / denominator), {"v": v}


@dataclass(frozen=True)
class Adam(Optimizer):
    """Adam (optax ``adam``)::

        m ← β1 m + (1 − β1) g,   v ← β2 v + (1 − β2) g²     m, v start at 0
        m̂ = m / (1 − β1^t),     v̂ = v / (1 − β2^t)
        θ ← θ − α m̂ / (√(v̂ + ε_root) + ε)

    Conventions
    -----------
    eps : outside the root (optax's ``eps``, PyTorch, the course).
    eps_root : inside the root, default 0 (optax's ``eps_root``).
    bias_correction : default True (optax, PyTorch, the course).  False is
        the uncorrected form, which takes far too large first steps; optax
        has no such switch, so its oracle is ``optax.adam`` with the step's
        ``α (1 − β1^t) / √(1 − β2^t)``, ``ε / √(1 − β2^t)`` and
        ``ε_root / (1 − β2^t)``: the same step, derived in the docstring of
        ``manual_bp_reference.optimizer_oracle``.
    """

    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    eps_root: float = 0.0
    bias_correction: bool = True

    name: ClassVar[str] = "adam"
    SLOTS: ClassVar[tuple[str, ...]] = ("m", "v")
    CONVENTIONS: ClassVar[tuple[str, ...]] = ("eps_root", "bias_correction")

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "b1", _real(self.b1, "b1", 0.0, 1.0, closed_high=False))
        object.__setattr__(self, "b2", _real(self.b2, "b2", 0.0, 1.0, closed_high=False))
        object.__setattr__(self, "eps", _real(self.eps, "eps", 0.0, math.inf, closed_high=False))
        object.__setattr__(
            self, "eps_root", _real(self.eps_root, "eps_root", 0.0, math.inf, closed_high=False)
        )
        object.__setattr__(self, "bias_correction", _flag(self.bias_correction, "bias_correction"))

    def adam_direction(self, g, slots, t, ops):
        """``(m̂ / (√(v̂ + ε_root) + ε), new m, new v)``."""
        m = self.b1 * slots["m"] + (1.0 - self.b1) * g
        v = self.b2 * slots["v"] + (1.0 - self.b2) * (g * g)
        m_hat, v_hat = m, v
        if self.bias_correction:
            m_hat = m / ops.correction(self.b1, t)
            v_hat = v / ops.correction(self.b2, t)
        root = ops.sqrt(v_hat + self.eps_root) if self.eps_root else ops.sqrt(v_hat)
        return m_hat / (root + self.eps), m, v

    def alternatives(self) -> dict[str, list[tuple[object, dict[str, Any]]]]:
        own = self.bias_correction
        options: dict[str, list[tuple[object, dict[str, Any]]]] = {
            "bias_correction": [(v, {"bias_correction": v}) for v in (own, not own)]
        }
        if self.eps and not self.eps_root:
            options["eps_placement"] = [
                ("outside", {}),
                ("inside", {"eps": 0.0, "eps_root": self.eps}),
            ]
        return options

    def describe(self, keyword: str, value: object) -> str:
        if keyword == "bias_correction":
            return (
                "divides m and v by 1 − β1^t and 1 − β2^t (bias correction, as optax)"
                if value
                else "skips the bias correction of m and v (optax always applies it)"
            )
        if keyword == "eps_placement":
            return (
                "puts eps inside the sqrt: √(v̂ + ε) (optax eps_root=ε, eps=0)"
                if value == "inside"
                else "puts eps outside the sqrt: √v̂ + ε (optax eps=ε)"
            )
        return super().describe(keyword, value)

    def rule(self, g, theta, slots, t, key, ops):
        direction, m, v = self.adam_direction(g, slots, t, ops)
        return theta - self.learning_rate * direction, {"m": m, "v": v}


@dataclass(frozen=True)
class AdamW(Adam):
    """Adam with decoupled weight decay (optax ``adamw``)::

        θ ← θ − α (m̂ / (√(v̂ + ε_root) + ε) + λ θ)      decay_scaled_by_lr=True
        θ ← θ − α m̂ / (√(v̂ + ε_root) + ε) − λ θ        decay_scaled_by_lr=False

    with m, v, m̂, v̂ as in ``Adam``: the decay never enters m or v (that
    would be Adam on the loss plus ``λ/2 ‖θ‖²``, the "L2" form).

    Conventions
    -----------
    weight_decay : λ, default 1e-4 (optax).
    decay_biases : decay every parameter, default True (optax's ``mask=None``,
        PyTorch).  False decays the weights only (keys not starting with ``B``),
        as the course's L2 term does.
    decay_scaled_by_lr : the decay is multiplied by α, default True (optax,
        PyTorch); False is Loshchilov and Hutter's ``θ ← θ − α(...) − λ θ``.
    """

    weight_decay: float = 1e-4
    decay_biases: bool = True
    decay_scaled_by_lr: bool = True

    name: ClassVar[str] = "adamw"
    CONVENTIONS: ClassVar[tuple[str, ...]] = (
        "eps_root",
        "bias_correction",
        "decay_biases",
        "decay_scaled_by_lr",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(
            self,
            "weight_decay",
            _real(self.weight_decay, "weight_decay", 0.0, math.inf, closed_high=False),
        )
        object.__setattr__(self, "decay_biases", _flag(self.decay_biases, "decay_biases"))
        object.__setattr__(
            self, "decay_scaled_by_lr", _flag(self.decay_scaled_by_lr, "decay_scaled_by_lr")
        )

    def decays(self, key: str) -> bool:
        """Whether ``key`` is decayed: none when λ = 0, else every key, or with
        ``decay_biases=False`` the keys not starting with ``B``."""
        return self.weight_decay > 0 and (self.decay_biases or not key.startswith("B"))

    def alternatives(self) -> dict[str, list[tuple[object, dict[str, Any]]]]:
        options = super().alternatives()
        if self.weight_decay:
            for keyword in ("decay_biases", "decay_scaled_by_lr"):
                own = getattr(self, keyword)
                options[keyword] = [(v, {keyword: v}) for v in (own, not own)]
        return options

    def describe(self, keyword: str, value: object) -> str:
        if keyword == "decay_biases":
            return (
                "decays the biases too (optax mask=None)"
                if value
                else "decays the weights only, not the biases (an optax mask)"
            )
        if keyword == "decay_scaled_by_lr":
            return (
                "multiplies the weight decay by the learning rate (optax, PyTorch)"
                if value
                else "does not multiply the weight decay by the learning rate (Loshchilov and "
                "Hutter)"
            )
        return super().describe(keyword, value)

    def rule(self, g, theta, slots, t, key, ops):
        lam = self.weight_decay if self.decays(key) else 0.0
        direction, m, v = self.adam_direction(g, slots, t, ops)
        decay = lam * theta
        if self.decay_scaled_by_lr:
            new_theta = theta - self.learning_rate * (direction + decay)
        else:
            new_theta = theta - self.learning_rate * direction - decay
        return new_theta, {"m": m, "v": v}


OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (SGD, Momentum, RMSProp, Adam, AdamW)
}


def make_optimizer(name: str, learning_rate: float, **options: Any) -> Optimizer:
    """``OPTIMIZERS[name](learning_rate, **options)``, naming ``optimizer`` when unknown.

    Examples
    --------
    >>> make_optimizer("rmsprop", 0.01, eps_in_sqrt=False)
    RMSProp(learning_rate=0.01, decay=0.9, eps=1e-08, eps_in_sqrt=False, initial_scale=0.0, bias_correction=False)
    """  # noqa: E501
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer: expected one of {sorted(OPTIMIZERS)}, got {name!r}")
    return OPTIMIZERS[name](learning_rate, **options)
