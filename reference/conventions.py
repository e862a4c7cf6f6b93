"""The conventions real backprop code uses, and the one conversion to and from ours.

manual_bp's convention (the seed's): samples as columns, ``X`` ``(n0, m)``,
``Wl`` ``(nl, n(l-1))``, ``Bl`` ``(nl, 1)``, a dict keyed ``W1, B1, ...``,
soft targets ``Y`` ``(nL, m)``, the loss the mean over the batch.  Other code
differs in ways that change no maths:

* ``layout="rows"``: the cs231n convention throughout, ``X`` ``(m, n0)``,
  ``Wl`` ``(n(l-1), nl)`` (so ``Z = X W + b``), ``Y`` and every ``dZl``,
  ``dAl`` ``(m, nl)``;
* ``names``: ``"W1/B1"``, ``"W1/b1"``, ``"w1/b1"`` or a mapping from our keys
  to theirs;
* ``bias_shape``: ``"column"`` ``(n, 1)``, ``"flat"`` ``(n,)`` or ``"row"``
  ``(1, n)`` (default: column for columns, flat for rows);
* ``container``: ``"dict"``, or ``"list"``: params ``[W1, B1, W2, B2, ...]``
  and gradients returned in that order;
* ``targets``: ``"soft"`` (probabilities), ``"one_hot"`` (the same array, only
  hard labels drawn) or ``"labels"``: integer class indices ``(m,)``;
* ``reduction``: ``"mean"`` or ``"sum"`` over the batch;
* ``l2``: the strength of ``l2 / 2 * sum ||Wl||^2`` (``manual_bp.losses.l2_penalty``);
  ``l2_divided_by_m``: the penalty is ``l2 / (2 m) * sum ||Wl||^2``, so
  ``dWl += l2 / m * Wl``, as the deeplearning.ai course writes it (``lambd``).

``Conventions.to_user(case)`` gives a case's ``(params, X, Y)`` in the user's
convention; ``Conventions.from_user(grads, case)`` brings the user's
gradients back into ours, with a problem string for each key it cannot.

>>> import numpy as np
>>> from manual_bp_reference.cases import Case, array_literal
>>> case = Case.of({"W1": np.ones((2, 3)), "B1": np.zeros((2, 1))}, np.ones((3, 4)),
...                np.eye(2)[:, [0, 1, 1, 0]], ["softmax"], "cross_entropy")
>>> rows = Conventions(layout="rows", names="W1/b1", targets="labels")
>>> params, X, Y = rows.to_user(case)
>>> params["W1"].shape, params["b1"].shape, X.shape, Y
((3, 2), (2,), (4, 3), array([0, 1, 1, 0]))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from manual_bp.architecture import gradient_keys, param_shapes
from manual_bp_reference.cases import Case, array_literal
from manual_bp_reference.per_sample import OneSampleAtATime, interleaved

Array = np.ndarray
LAYOUTS = ("columns", "rows")
NAMINGS = ("W1/B1", "W1/b1", "w1/b1")
BIAS_SHAPES = ("column", "flat", "row")
CONTAINERS = ("dict", "list", "nabla")
TARGETS = ("soft", "one_hot", "labels")
REDUCTIONS = ("mean", "sum")


class GradsTypeError(TypeError):
    """What the user's code returned is no container of gradients at all."""


def describe_value(value: object) -> str:
    """``None``, ``a tuple of 2 (float, dict)``, ``a float``: what a function returned."""
    from manual_bp_reference.isolation import type_name

    if value is None:
        return "None"
    if isinstance(value, tuple | list):
        inner = ", ".join(type_name(v) for v in value[:4]) + (", ..." if len(value) > 4 else "")
        return f"a {type(value).__name__} of {len(value)} ({inner})"
    return f"a {type_name(value)}"


def param_shapes_keys(depth: int) -> list[str]:
    """``W1, B1, ..., WL, BL``: the order of a ``container="list"``."""
    return [key for l in range(1, depth + 1) for key in (f"W{l}", f"B{l}")]


def convention_fields() -> list[Any]:
    """The conventions, as ``dataclasses.Field`` of ``Conventions`` (the public ones)."""
    import dataclasses

    return [f for f in dataclasses.fields(Conventions) if not f.name.startswith("_")]


def _one_of(value: object, allowed: Sequence[str], name: str) -> None:
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {list(allowed)}, got {value!r}")


def _convention(
    default: Any,
    description: str,
    *,
    choices: Sequence[str] | None = None,
    for_layers: str = "",
    kind: type | None = None,
) -> Any:
    """A field of ``Conventions`` with what the command line needs to offer it as
    a flag: its ``description`` (the flag's help), ``choices`` (None: any value
    of its ``kind``, default the default's type), and the help of a command
    that also checks layer functions (``for_layers``)."""
    metadata = {
        "description": description,
        "choices": None if choices is None else tuple(choices),
        "for_layers": for_layers,
        "kind": kind or type(default),
    }
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Conventions:
    """How a user's backprop lays out its arrays (see the module docstring).

    Each field is a convention, and the command line offers each as a flag
    (``--layout``, ``--bias-shape``, ...), built from ``convention_fields()``:
    a new convention is a new field here, with its handling in ``to_user`` and
    ``from_user``.
    """

    layout: str = _convention(
        "columns", "samples as columns, or as rows (cs231n) (default: columns)",
        choices=LAYOUTS, for_layers="default: columns for a network, rows (cs231n) with --layer",
    )  # fmt: skip
    names: str | Mapping[str, str] = _convention("W1/B1", "default: W1/B1", choices=NAMINGS)
    bias_shape: str | None = _convention(
        None, "default: column for columns, flat for rows", choices=BIAS_SHAPES, kind=str
    )
    container: str = _convention(
        "dict", "dict, list [W1, b1, ...], or nabla: Nielsen's (nabla_b, nabla_w) lists "
        "(default: dict)", choices=CONTAINERS,
    )  # fmt: skip
    targets: str = _convention(
        "soft", "default: soft", choices=TARGETS,
        for_layers="default: soft for a network, labels for a --layer cross-entropy head",
    )  # fmt: skip
    reduction: str = _convention("mean", "default: mean", choices=REDUCTIONS)
    l2: float = _convention(
        0.0, "L2 strength L: your loss adds L/2 * sum ||Wl||^2 (cs231n's reg * sum W*W is "
        "--l2 2*reg) (default: 0)",
    )  # fmt: skip
    l2_divided_by_m: bool = _convention(
        False, "your loss adds L/(2m) * sum ||Wl||^2 and dWl += L/m * Wl, as the "
        "deeplearning.ai course's lambd (default: L/2, not divided)",
    )  # fmt: skip
    per_sample: bool = _convention(
        False, "your function takes one sample at a time: Nielsen's backprop(x, y) method "
        "(its object's weights and biases are set) or backprop(params, x, y); the checker "
        "averages its gradients (sums them with --reduction sum) (default: a batch)",
    )  # fmt: skip
    _mapping: Mapping[str, str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        _one_of(self.layout, LAYOUTS, "layout")
        if isinstance(self.names, Mapping):
            if not all(isinstance(v, str) for v in self.names.values()):
                raise TypeError(f"names: expected a mapping of str to str, got {self.names!r}")
            if len(set(self.names.values())) != len(self.names):
                raise ValueError(f"names: two keys map to one name in {dict(self.names)!r}")
            object.__setattr__(self, "_mapping", dict(self.names))
        else:
            _one_of(self.names, NAMINGS, "names")
        if self.bias_shape is None:
            object.__setattr__(self, "bias_shape", "column" if self.layout == "columns" else "flat")
        _one_of(self.bias_shape, BIAS_SHAPES, "bias_shape")
        _one_of(self.container, CONTAINERS, "container")
        _one_of(self.targets, TARGETS, "targets")
        _one_of(self.reduction, REDUCTIONS, "reduction")
        if isinstance(self.l2, bool) or not isinstance(self.l2, int | float):
            raise TypeError(f"l2: expected a number, got {self.l2!r}")
        if not (np.isfinite(self.l2) and self.l2 >= 0):
            raise ValueError(f"l2: expected a finite number >= 0, got {self.l2!r}")
        if not isinstance(self.l2_divided_by_m, bool):
            raise TypeError(
                f"l2_divided_by_m: expected True or False, got {self.l2_divided_by_m!r}"
            )
        if not isinstance(self.per_sample, bool):
            raise TypeError(f"per_sample: expected True or False, got {self.per_sample!r}")
        if self.l2_divided_by_m and not self.l2:
            raise ValueError("l2_divided_by_m: divides the L2 penalty, but l2 is 0 (give l2)")

    def runnable(self, source: Any) -> Any:
        """What a check runs for the user's function ``source`` (a callable or
        ``"FILE.py:NAME"``): itself, or with ``per_sample`` the batch function
        ``manual_bp_reference.per_sample.OneSampleAtATime`` makes of it."""
        if not self.per_sample:
            return source
        return OneSampleAtATime(source, self.layout, average=self.reduction == "mean")

    def l2_for(self, m: int) -> float:
        """The strength in our form ``l2 / 2 * sum ||Wl||^2`` for a batch of ``m``."""
        return self.l2 / m if self.l2_divided_by_m else self.l2

    def judged(self, case: Case) -> Case:
        """``case`` with the user's L2 penalty in our form (``l2_for(case.m)``)
        as its weight decay: the case the user's gradients are judged on."""
        l2 = self.l2_for(case.m)
        if not l2:
            return case
        if case.l2:
            raise ValueError(
                f"l2: the case has its own weight decay (case.l2={case.l2!r}) and the "
                f"conventions l2={self.l2!r}; give one of them"
            )
        return dataclasses.replace(case, net=case.net.with_l2(l2))

    def as_dict(self) -> dict:
        """The arguments that rebuild these conventions (JSON-ready): every field."""
        fields = {f.name: getattr(self, f.name) for f in convention_fields()}
        if not isinstance(self.names, str):
            fields["names"] = dict(self.names)
        return fields

    # ------------------------------------------------------------------ names
    def user_key(self, key: str) -> str:
        """The user's name for our key ``W1``, ``B1``, ``Z1``, ``A1``."""
        if self._mapping is not None:
            if key[0] in "WB" and key not in self._mapping:
                raise ValueError(f"names: no name given for {key!r} in {dict(self._mapping)!r}")
            return self._mapping.get(key, key)
        if key[0] in "WB" and self.names == "w1/b1":
            return key.lower()
        return key.lower() if (key[0] == "B" and self.names == "W1/b1") else key

    def check_targets(self, loss: str, n_outputs: int) -> None:
        """Labels and one-hot targets exist for the classification losses only."""
        if self.targets == "soft":
            return
        if loss == "mse":
            raise ValueError(f"targets: {self.targets!r} needs a cross-entropy loss, got 'mse'")
        if self.targets == "labels" and loss == "binary_cross_entropy" and n_outputs != 1:
            raise ValueError(
                f"targets: 'labels' with binary_cross_entropy needs 1 output unit, got {n_outputs}"
            )

    # ----------------------------------------------------------------- to user
    def _param_to_user(self, key: str, value: Array) -> Array:
        value = np.array(value)  # a writable copy the user may change
        if key[0] == "W":
            return value.T.copy() if self.layout == "rows" else value
        if self.bias_shape == "flat":
            return value.reshape(-1).copy()
        return value.reshape(1, -1).copy() if self.bias_shape == "row" else value

    def _targets_to_user(self, case: Case) -> Array:
        Y = np.array(case.Y)
        if self.targets == "labels":
            if case.loss == "cross_entropy":
                return np.argmax(Y, axis=0).astype(np.int64)
            return Y[0].astype(np.int64)
        return Y.T.copy() if self.layout == "rows" else Y

    def params_to_user(self, params: Mapping[str, Array], layer_sizes: Sequence[int]) -> Any:
        """Arrays keyed as ``params`` (``W1``, ``B1``, ...; a direction ``V``
        too) in the user's layout, names, bias shape and container (fresh,
        writable)."""
        user = {
            self.user_key(key): self._param_to_user(key, params[key])
            for key in param_shapes(layer_sizes)
        }
        if self.container == "list":
            return list(user.values())
        if self.container == "nabla":  # Nielsen's (biases, weights)
            values = list(user.values())
            return (values[1::2], values[0::2])
        return user

    def to_user(self, case: Case) -> tuple[dict[str, Array] | list[Array], Array, Array]:
        """``(params, X, Y)`` of ``case`` in the user's convention (fresh, writable)."""
        X = np.array(case.X.T if self.layout == "rows" else case.X)
        params = self.params_to_user(case.params, case.layer_sizes)
        return params, X, self._targets_to_user(case)

    def pasteable(self, case: Case, *, function: str = "backprop", call: str | None = None) -> str:
        """``case`` as the user's own call, exact and pasteable: ``params``,
        ``X``, ``Y`` in this convention, then ``grads = backprop(params, X, Y)``
        (or ``call``, the lines that call the user's functions on them)."""
        params, X, Y = self.to_user(case)
        params_text = params_literal(params)
        lines = f"grads = {function}(params, X, Y)"
        if self.per_sample:
            pick = (
                "X[k:k + 1], Y[k:k + 1]"
                if self.layout == "rows"
                else "X[:, k:k + 1], Y[:, k:k + 1]"
            )
            if Y.ndim == 1:
                pick = pick.split(", ")[0] + ", Y[k]"
            mean = " (then divided by m: the mean)" if self.reduction == "mean" else ""
            lines = (
                "# one sample at a time, summed" + mean + "; a Nielsen Network: "
                "net.biases, net.weights = params and net.backprop(x, y)\n"
                f"per_sample = [{function}(params, {pick}) for k in range({case.m})]"
            )
        call = lines if call is None else call
        return f"params = {params_text}\nX = {array_literal(X)}\nY = {array_literal(Y)}\n{call}"

    # --------------------------------------------------------------- from user
    def expected_user_shape(self, key: str, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The user's shape of our array of shape ``shape``."""
        if key[0] == "B":
            shapes = {"column": shape, "flat": (shape[0],), "row": (1, shape[0])}
            return shapes[str(self.bias_shape)]  # resolved in __post_init__, never None
        return shape[::-1] if self.layout == "rows" else shape

    def reshapes(self) -> bool:
        """Whether a report in the user's terms differs from ours: another
        layout, other names or another bias shape."""
        return (self.layout, self.names, self.bias_shape) != ("columns", "W1/B1", "column")

    def view(
        self, key: str, shape: tuple[int, ...], index: tuple[int, ...] | None
    ) -> tuple[str, tuple[int, ...], tuple[int, ...] | None]:
        """Our array ``key`` of ``shape`` and an entry ``index`` of it, as the
        user's code has them: its name, its shape, the entry's index."""
        if key[0] == "B":
            name = self.user_key(key)
            if len(shape) != 2:  # a problem, not an array: no shape to convert
                return name, shape, index
            if index is not None and len(index) == 2:
                flat = {"column": index, "flat": (index[0],), "row": (0, index[0])}
                index = flat[str(self.bias_shape)]
            return name, self.expected_user_shape(key, shape), index
        name = self.user_key(key) if key[0] == "W" else key
        if self.layout == "rows" and len(shape) == 2:
            return name, shape[::-1], None if index is None else index[::-1]
        return name, shape, index

    def _from_user_array(self, key: str, value: object, shape: tuple) -> Array | str:
        try:
            array = np.asarray(value)
        except Exception as error:  # a ragged list, an object: say what it was
            return f"not an array: {type(value).__name__} ({error})"
        if not np.issubdtype(array.dtype, np.floating):
            return f"dtype {array.dtype}, expected a floating-point array"
        expected = self.expected_user_shape(key, shape)
        if array.shape != expected:
            return f"shape {array.shape}, expected {expected}"
        if key[0] == "B":
            array = array.reshape(shape)
        elif self.layout == "rows":
            array = array.T
        # A sum's gradients stay as they are: compare(reduction="sum") scales
        # the oracle instead, so the user's values are judged unrounded.
        return array

    def _other_bias_shape(
        self, key: str, value: object, shape: tuple, notes: list[str]
    ) -> Array | str:
        """A bias gradient in another of the three bias shapes than declared
        (code that keeps ``db1`` flat and ``db2`` a row): read, with a note.
        Otherwise the declared shape's problem."""
        declared = self._from_user_array(key, value, shape)
        for other in BIAS_SHAPES:
            if other == self.bias_shape:
                continue
            alternative = Conventions(layout=self.layout, bias_shape=other)
            converted = alternative._from_user_array(key, value, shape)
            if not isinstance(converted, str):
                given = np.asarray(value).shape  # an array: converted above
                notes.append(
                    f"{key}: gradient returned with shape {given} ({other}), the declared "
                    f"bias shape is {self.expected_user_shape(key, shape)} ({self.bias_shape}): "
                    "read as its values"
                )
                return converted
        return declared

    def raw_array(self, grads: object, key: str, depth: int) -> Array | None:
        """The user's array for our ``key`` as returned (transposed to our layout
        when 2-D and ``layout="rows"``), for the diagnosis of a wrong shape."""
        if self.container == "dict" and _is_loss_and_grads(grads):
            grads = grads[1]  # type: ignore[index]  # checked by _is_loss_and_grads
        try:
            if self.container == "list":
                value = list(grads)[list(param_shapes_keys(depth)).index(key)]  # type: ignore[call-overload]  # any sequence the user returned
            else:
                name = self.user_key(key)
                if name not in grads:  # type: ignore[operator]  # any mapping the user returned
                    name = _gradient_names({key: name}, [key], grads).get(key, name)  # type: ignore[arg-type]
                value = grads[name]  # type: ignore[index]
            array = np.asarray(value, dtype=np.float64)
        except (KeyError, IndexError, ValueError, TypeError):
            return None
        return array.T if (self.layout == "rows" and array.ndim == 2) else array

    def from_user(self, grads: object, case: Case) -> UserGrads:
        """The user's ``grads`` in our convention: ``(grads, problems, extra, notes)``.

        ``problems`` maps our key to why its array cannot be compared (shape,
        dtype, missing); ``extra`` names the user's keys that are none of
        ours (not checked, never a failure); ``notes`` say how the return
        value was read.  ``Zl``/``Al`` (l < L) are taken when the user returns
        them under our names.

        With ``container="dict"``, two shapes of real code are read as they
        are written: a ``(loss, grads)`` pair (cs231n's
        ``FullyConnectedNet.loss``) gives its ``grads``, and a parameter's
        gradient may be keyed by the parameter's name with a ``d`` in front
        (the deeplearning.ai course's ``dW1``, ``db1``), in any case
        (``dw1``), where the name itself is not a key.
        """
        notes: list[str] = []
        if self.container == "dict" and _is_loss_and_grads(grads):
            grads = grads[1]  # type: ignore[index]  # checked by _is_loss_and_grads
            notes.append("backprop returned (loss, grads): the grads are checked, not the loss")
        sizes, m = case.layer_sizes, case.m
        shapes = dict(param_shapes(sizes))
        for l in range(1, case.depth + 1):
            shapes[f"Z{l}"] = (sizes[l], m)
            if l < case.depth:
                shapes[f"A{l}"] = (sizes[l], m)
        ours = [key for key in gradient_keys(case.depth) if key in shapes]
        param_keys = list(param_shapes(sizes))
        problems: dict[str, str] = {}
        out: dict[str, Array] = {}
        if self.per_sample:  # a sample's Zl, Al summed over the batch mean nothing
            ours = [key for key in ours if key[0] in "WB"]
        if self.container == "nabla":  # read as the list it holds
            grads = self._from_nabla(grads, case.depth)
        if self.container in ("list", "nabla"):
            if isinstance(grads, Mapping) or not isinstance(grads, Sequence | tuple):
                raise GradsTypeError(
                    f"backprop returned {describe_value(grads)}; container='list' expects "
                    f"a list of gradients in the order {param_keys}"
                )
            if len(grads) != len(param_keys):
                extra = [f"item {i}" for i in range(len(param_keys), len(grads))]
                for key in param_keys[len(grads) :]:
                    problems[key] = "missing from grads (the list is too short)"
                grads = dict(zip(param_keys, grads, strict=False))
            else:
                extra = []
                grads = dict(zip(param_keys, grads, strict=True))
            user = {key: key for key in param_keys}
        else:
            if not isinstance(grads, Mapping):
                expected = [self.user_key(key) for key in param_keys]
                hint = ""
                if isinstance(grads, tuple | list) and any(isinstance(g, Mapping) for g in grads):
                    hint = (
                        "; if it returns (loss, grads), check a function that returns the "
                        "grads alone, e.g. lambda params, X, Y: backprop(params, X, Y)[1]"
                    )
                raise GradsTypeError(
                    f"backprop returned {describe_value(grads)}; expected a dict of gradients "
                    f"keyed like the params ({', '.join(map(repr, expected))}){hint}"
                )
            user = {key: self.user_key(key) for key in ours}
            renamed = _gradient_names(user, param_keys, grads)
            if renamed:
                user.update(renamed)
                notes.append(
                    "gradients read from "
                    + ", ".join(f"{name!r} for {key}" for key, name in renamed.items())
                )
            known = set(user.values())
            extra = [str(key) for key in grads if key not in known]
        for key in ours:
            name = user.get(key)
            if name is None or name not in grads:
                if key[0] in "WB":
                    problems.setdefault(key, f"missing from grads (expected key {name!r})")
                continue
            converted = self._from_user_array(key, grads[name], shapes[key])
            if isinstance(converted, str) and key[0] == "B":
                converted = self._other_bias_shape(key, grads[name], shapes[key], notes)
            if isinstance(converted, str):
                problems[key] = converted
            else:
                out[key] = converted
        return UserGrads(out, problems, extra, notes)

    def _from_nabla(self, grads: object, depth: int) -> list[object]:
        """Nielsen's ``(nabla_b, nabla_w)``, as the list ``[W1, B1, W2, B2, ...]``."""
        if not (
            isinstance(grads, tuple | list)
            and len(grads) == 2
            and all(isinstance(g, tuple | list) for g in grads)
        ):
            raise GradsTypeError(
                f"backprop returned {describe_value(grads)}; container='nabla' expects "
                f"Nielsen's (nabla_b, nabla_w): two lists of {depth} arrays, biases first"
            )
        nabla_b, nabla_w = grads
        if len(nabla_b) != len(nabla_w):
            raise GradsTypeError(
                f"backprop returned {len(nabla_b)} bias gradients and {len(nabla_w)} weight "
                "gradients; container='nabla' expects one of each per layer"
            )
        return interleaved(list(nabla_b), list(nabla_w))


def params_literal(params: Any) -> str:
    """``Conventions.params_to_user``'s value as pasteable Python: a dict, a
    list, or Nielsen's ``(biases, weights)`` pair of lists."""

    def listed(values: Sequence[Array]) -> str:
        items = ",\n".join(f"    {array_literal(value)}" for value in values)
        return f"[\n{items},\n]"

    if isinstance(params, list):
        return listed(params)
    if isinstance(params, tuple):  # Nielsen's (biases, weights)
        return f"({listed(params[0])}, {listed(params[1])})"
    items = ",\n".join(f"    {key!r}: {array_literal(v)}" for key, v in params.items())
    return f"{{\n{items},\n}}"


class UserGrads(NamedTuple):
    """``Conventions.from_user``'s answer (see there)."""

    grads: dict[str, Array]
    problems: dict[str, str]
    extra: list[str]
    notes: list[str]


def _is_loss_and_grads(value: object) -> bool:
    """``(loss, grads)``: a pair of one real number (a scalar, or an array of
    one entry: a course cost without ``np.squeeze``) and a mapping."""
    if not isinstance(value, tuple | list) or len(value) != 2:
        return False
    loss, grads = value
    if isinstance(loss, bool) or not isinstance(grads, Mapping):
        return False
    try:  # anything at all may come first: a ragged list of caches, an object
        array = np.asarray(loss)
        return array.size == 1 and array.dtype.kind in "iuf"
    except (ValueError, TypeError):
        return False


def _gradient_names(
    user: Mapping[str, str], param_keys: Sequence[str], grads: Mapping
) -> dict[str, str]:
    """For each parameter whose user name is not a key of ``grads``: the one
    key that is ``d`` + that name, or, failing that, the one that equals it
    or ``d`` + it ignoring case (the course's ``dW1``, a student's ``dw1``)."""
    keys = [key for key in grads if isinstance(key, str)]
    found = {}
    for key in param_keys:
        name = user[key]
        if name in grads:
            continue
        if "d" + name in grads:
            found[key] = "d" + name
            continue
        wanted = {name.lower(), "d" + name.lower()}
        matches = [other for other in keys if other.lower() in wanted]
        if len(matches) == 1:
            found[key] = matches[0]
    return found
