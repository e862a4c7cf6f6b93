"""``run_user``: the user's forward and backward on one case, with copies; what
they return, unpacked."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from manual_bp_reference.isolation import (
    UserFunction,
)
from manual_bp_reference.layer_check.cases import LayerCase
from manual_bp_reference.layer_check.specs import kind_of


def run_user(
    backward: Callable[..., object], forward: Callable[..., object] | None, case: LayerCase
) -> tuple[dict[str, object], dict[str, str]]:
    """The user's outputs on ``case`` as returned (user layout), keyed ``out``,
    ``dx``, ... and the problems of what could not be read.  Raises what the
    user's code raises.  The user gets copies: our arrays stay ours.  With
    ``manual_bp_reference.isolation.UserFunction``s the forward's cache stays where the
    code runs and reaches the backward as it was returned."""
    kind = kind_of(case.layer)
    outputs: dict[str, object] = {}
    problems: dict[str, str] = {}
    if kind.returns_loss:
        if kind.shapes is not None:
            args = case.forward_arguments()
            call = f"loss({', '.join(kind.shapes.call)})"
        else:
            args = [np.array(case.inputs["x"]), np.array(case.inputs["y"])]
            call = "loss(x, y)"
        outputs.update(_unpack(backward(*args), kind.grads, call, problems))
        return outputs, problems
    args = case.forward_arguments()
    names = kind.outputs
    if forward is None:
        assert kind.default_cache is not None  # check_layer asks for a forward otherwise
        cache: object = kind.default_cache(tuple(args))
    else:
        result = forward(*args)
        if not (isinstance(result, tuple) and len(result) == len(names) + 1):
            expected = f"({', '.join(names)}, cache)"
            got = f"{len(result)} values" if isinstance(result, tuple) else type(result).__name__
            problems[names[0]] = f"forward returned {got}, expected {expected}"
            return outputs, problems
        outputs.update(zip(names, result[:-1], strict=True))
        cache = result[-1]
        if isinstance(forward, UserFunction):
            cache = forward.keep(len(names))
    douts = [np.array(d) for d in case.douts]
    call = f"backward({', '.join(f'd{name}' for name in names)}, cache)"
    outputs.update(_unpack(backward(*douts, cache), kind.grads, call, problems))
    return outputs, problems


def _unpack(
    result: object, names: Sequence[str], call: str, problems: dict[str, str]
) -> dict[str, object]:
    """``result`` as ``{name: value}``: a tuple/list in order (a bare array for one
    name) or a dict keyed by the names; what is missing goes to ``problems``."""
    if len(names) == 1 and not isinstance(result, tuple | list | Mapping):
        return {names[0]: result}
    if isinstance(result, Mapping):
        found = {name: result[name] for name in names if name in result}
        extra = [str(k) for k in result if k not in names]
        for name in names:
            if name not in found:
                problems[name] = f"missing: {call} returned keys {sorted(map(str, result))}"
        if extra:
            problems.setdefault(names[0], f"extra keys returned by {call}: {extra}")
        return found
    if not isinstance(result, tuple | list):
        for name in names:
            problems[name] = (
                f"missing: {call} returned {type(result).__name__}, expected ({', '.join(names)})"
            )
        return {}
    found = dict(zip(names, result, strict=False))
    for name in names[len(result) :]:
        problems[name] = (
            f"missing: {call} returned {len(result)} values, expected {len(names)} "
            f"({', '.join(names)})"
        )
    if len(result) > len(names):
        problems[names[-1]] = (
            f"{call} returned {len(result)} values, expected {len(names)} ({', '.join(names)})"
        )
    return found
