"""Input checks shared by every entry point.

Each check raises ``TypeError`` (wrong kind of object) or ``ValueError`` (right
kind, wrong value or shape), naming the argument, what was expected and what
arrived.  Checks never modify their argument; arrays are converted to the
network's dtype into a new array only when their dtype differs.  Shapes are
compared exactly, so NumPy broadcasting never turns a shape mistake into
numbers.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np

from manual_bp.activations import ACTIVATIONS
from manual_bp.architecture import param_shapes
from manual_bp.losses import LOSSES

SUPPORTED_DTYPES = ("float32", "float64")


def check_dtype(dtype: object) -> np.dtype:
    """Return ``np.dtype(dtype)`` if it is float32 or float64."""
    try:
        resolved = np.dtype(cast(Any, dtype))  # any object: numpy decides, TypeError caught
    except TypeError:
        resolved = None
    if resolved is None or resolved.name not in SUPPORTED_DTYPES:
        raise TypeError(f"dtype: expected one of {SUPPORTED_DTYPES}, got {dtype!r}")
    return resolved


def check_positive_int(
    value: object, name: str, minimum: int = 1, *, too_small: str | None = None
) -> int:
    """Return ``value`` as an int if it is an integer >= ``minimum`` (bool is refused).

    ``too_small`` words the ``ValueError``'s expectation (default ``an int >= minimum``).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{name}: expected an int >= {minimum}, got {type(value).__name__} {value!r}"
        )
    if value < minimum:
        raise ValueError(f"{name}: expected {too_small or f'an int >= {minimum}'}, got {value}")
    return int(value)


def check_layer_sizes(layer_sizes: object) -> list[int]:
    """``[n0, n1, ..., nL]``: at least two positive ints."""
    if isinstance(layer_sizes, (str, bytes)) or not isinstance(layer_sizes, Sequence):
        raise TypeError(f"layer_sizes: expected a list of ints [n0, ..., nL], got {layer_sizes!r}")
    if len(layer_sizes) < 2:
        raise ValueError(
            "layer_sizes: expected at least an input and an output size "
            f"[n0, ..., nL] with L >= 1, got {list(layer_sizes)!r}"
        )
    return [check_positive_int(n, f"layer_sizes[{i}]") for i, n in enumerate(layer_sizes)]


def check_activations(activations: object, depth: int) -> list[str]:
    """A list of ``depth`` activation names."""
    if isinstance(activations, (str, bytes)) or not isinstance(activations, Sequence):
        raise TypeError(f"activations: expected a list of {depth} names, got {activations!r}")
    if len(activations) != depth:
        raise ValueError(
            f"activations: expected {depth} names (one per layer), "
            f"got {len(activations)}: {list(activations)!r}"
        )
    for l, name in enumerate(activations, start=1):
        if name not in ACTIVATIONS:
            raise ValueError(
                f"activations[{l - 1}] (layer {l}): expected one of "
                f"{sorted(ACTIVATIONS)}, got {name!r}"
            )
    return list(activations)


def check_loss_pair(loss: object, output_activation: str, n_outputs: int) -> str:
    """The loss name, checked against the output activation and ``n_L``."""
    if loss not in LOSSES:
        raise ValueError(f"loss: expected one of {sorted(LOSSES)}, got {loss!r}")
    spec = LOSSES[loss]
    if output_activation not in spec.output_activations:
        raise ValueError(
            f"loss: {loss} needs an output activation in "
            f"{sorted(spec.output_activations)}, got {output_activation!r}"
        )
    if n_outputs < spec.min_outputs:
        raise ValueError(
            f"loss: {loss} needs at least {spec.min_outputs} outputs, got n_L = {n_outputs}"
        )
    return loss


def as_float_matrix(value: object, name: str, dtype: np.dtype) -> np.ndarray:
    """A real, finite, 2-D array of ``dtype`` (a new array only if converted)."""
    try:
        array = np.asarray(value)
    except ValueError as error:  # ragged nested lists
        raise ValueError(f"{name}: expected a rectangular 2-D array, got {error}") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a real numeric array, got dtype {array.dtype}")
    if array.ndim != 2:
        hint = f"; for one row use {name}.reshape(1, -1)" if array.ndim == 1 else ""
        raise ValueError(
            f"{name}: expected a 2-D array (features, samples) with one sample per column, "
            f"got shape {array.shape}{hint}"
        )
    if array.dtype != dtype:
        with np.errstate(over="ignore"):  # reported below, by name
            converted = array.astype(dtype)
        if not np.isfinite(converted).all() and np.isfinite(array).all():
            raise ValueError(
                f"{name}: values up to {np.max(np.abs(array)):.3g} overflow {np.dtype(dtype)} "
                f"(largest {np.finfo(dtype).max:.3g})"
            )
        array = converted
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: expected finite values, got NaN or inf")
    return array


def transpose_hint(name: str, shape: tuple[int, ...], expected: tuple[int, ...]) -> str:
    """``"; did you mean X.T?"`` when the transpose of ``shape`` would fit, else ``""``."""
    fits = len(shape) == 2 and shape[::-1] == expected and shape != expected
    return f"; did you mean {name}.T?" if fits else ""


def check_shape(
    array: np.ndarray, name: str, expected: tuple[int, ...], *, layout: str = "", why: str = ""
) -> None:
    """``array.shape == expected`` exactly; the message says ``layout = expected (why)``."""
    shape = tuple(array.shape)
    if shape != tuple(expected):
        named = f"{layout} = {expected}" if layout else f"{expected}"
        raise ValueError(
            f"{name}: expected shape {named}{' ' + why if why else ''}, got {shape}"
            + transpose_hint(name, shape, tuple(expected))
        )


def check_inputs(X: object, n_inputs: int, dtype: np.dtype) -> np.ndarray:
    """``X`` of shape ``(n0, m)`` with ``m >= 1``."""
    array = as_float_matrix(X, "X", dtype)
    if array.shape[0] != n_inputs or array.shape[1] < 1:
        fits_transposed = array.shape[1] == n_inputs and array.shape[0] >= 1
        raise ValueError(
            f"X: expected shape ({n_inputs}, m) with one sample per column and m >= 1, "
            f"got {array.shape}"
            + (" (one sample per row?); did you mean X.T?" if fits_transposed else "")
        )
    return array


def check_targets(Y: object, expected_shape: tuple[int, int], loss: str, dtype: np.dtype):
    """``Y`` of shape ``(n_L, m)`` inside the loss's domain."""
    array = as_float_matrix(Y, "Y", dtype)
    check_shape(array, "Y", expected_shape)
    LOSSES[loss].check_targets(array)
    return array


def check_params(
    params: object,
    layer_sizes: Sequence[int],
    dtype: np.dtype,
    name: str = "params",
    *,
    normalization: Sequence[str | None] = (),
) -> dict[str, np.ndarray]:
    """A dict with exactly ``W1..WL`` and ``B1..BL`` (and a normalized layer's
    ``gammal``, ``betal``) of the right shapes and dtype."""
    if not isinstance(params, Mapping):
        raise TypeError(f"{name}: expected a dict of arrays, got {type(params).__name__}")
    expected = param_shapes(layer_sizes, normalization=normalization)
    if set(params) != set(expected):
        raise ValueError(
            f"{name}: expected keys {sorted(expected)}, got {sorted(map(str, params))}"
        )
    checked = {}
    for key, shape in expected.items():
        array = np.asarray(params[key])
        if array.dtype != dtype:
            raise TypeError(f"{name}[{key!r}]: expected dtype {dtype}, got {array.dtype}")
        check_shape(array, f"{name}[{key!r}]", shape)
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name}[{key!r}]: expected finite values, got NaN or inf")
        checked[key] = array
    return checked


def check_positive_float(value: object, name: str) -> float:
    """A finite real number > 0 (not a bool), as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a positive float, got {value!r}")
    number = float(value)
    if not (np.isfinite(number) and number > 0):
        raise ValueError(f"{name}: expected a finite float > 0, got {value}")
    return number


def check_learning_rate(learning_rate: object) -> float:
    """A finite real number > 0."""
    return check_positive_float(learning_rate, "learning_rate")


def check_l2(value: object, name: str = "l2") -> float:
    """A weight decay strength: a finite real number >= 0 (not a bool), as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a float >= 0, got {type(value).__name__} {value!r}")
    number = float(value)
    if not (np.isfinite(number) and number >= 0):
        raise ValueError(f"{name}: expected a finite float >= 0, got {value}")
    return number


# --- the layer modules' arguments ----------------------------------------------------
#
# convolution, pooling, spatial_normalization, recurrent, embedding and temporal take
# NumPy's arrays or, under ``xp=jax.numpy``, jax's (a tracer included): these checks
# read ``shape`` and ``dtype`` only and never convert.  What a layer's message says of
# its own (a layout, whose dtype, which forward) is an argument; the logic is here once.


def layout_ndim(layout: str) -> int:
    """The axes a layout names: ``layout_ndim("(N, T, D)") == 3``, ``layout_ndim("(H,)") == 1``."""
    return len([axis for axis in layout.strip("()").split(",") if axis.strip()])


def check_ndim(shape: tuple[int, ...], name: str, layout: str) -> None:
    """``shape`` has as many axes as ``layout`` (such as ``"(N, C, H, W)"``) names."""
    ndim = layout_ndim(layout)
    if len(shape) != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array {layout}, got shape {tuple(shape)}")


def check_same_dtype(dtype: object, name: str, like: object, whose: str = "(x's)") -> None:
    """No silent casting: ``dtype`` is ``like``'s (``whose`` says which array that is)."""
    got, expected = np.dtype(cast(Any, dtype)), np.dtype(cast(Any, like))
    if got != expected:
        raise TypeError(f"{name}: expected dtype {expected} {whose}, got {got}")


def check_float_array(
    value: object,
    name: str,
    layout: str = "",
    *,
    like: object = None,
    whose: str = "(x's)",
    expected: str | None = None,
    nonempty: bool = False,
) -> np.dtype:
    """``value``'s dtype, once it is known to be a float32 or float64 array.

    ``TypeError`` for no array, another dtype (``expected`` words both, by default
    ``an array`` and ``dtype float32 or float64``) or, with ``like``, a dtype that is
    not ``like``'s; ``ValueError`` for another number of axes than ``layout`` names or,
    with ``nonempty``, an empty axis.
    """
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is None or dtype is None:
        raise TypeError(f"{name}: expected {expected or 'an array'}, got {type(value).__name__}")
    resolved = np.dtype(dtype)
    if resolved.name not in SUPPORTED_DTYPES:
        raise TypeError(
            f"{name}: expected {expected or 'dtype float32 or float64'}, got dtype {resolved}"
        )
    if like is not None:
        check_same_dtype(resolved, name, like, whose)
    if layout:
        check_ndim(tuple(shape), name, layout)
    if nonempty and 0 in tuple(shape):
        raise ValueError(f"{name}: expected no empty dimension, got shape {tuple(shape)}")
    return resolved


def check_integer_array(value: object, name: str, expected: str) -> np.ndarray:
    """``value`` as a NumPy array of integers (bool is refused): indices or labels."""
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name}: expected {expected}, got dtype {array.dtype}")
    return array


def check_entries(bad: np.ndarray, values: np.ndarray, name: str, expected: str) -> None:
    """``ValueError`` naming the first entry of ``values`` where ``bad`` holds, and where."""
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name}: expected {expected}, got {values[where]} at "
            f"{name}[{', '.join(map(str, where))}]"
        )


def check_cache(
    cache: object, keys: Sequence[str], made_by: str, *, expected: str | None = None
) -> Mapping[str, Any]:
    """The dict ``made_by`` returned, with every one of ``keys``.

    ``expected`` words the missing keys' message (by default the dict and its keys).
    """
    if not isinstance(cache, Mapping):
        raise TypeError(f"cache: expected the dict {made_by} returns, got {type(cache).__name__}")
    missing = [key for key in keys if key not in cache]
    if missing:
        wanted = expected or f"the dict {made_by} returns, with keys {list(keys)}"
        raise ValueError(f"cache: expected {wanted}; missing {missing}")
    return cache
