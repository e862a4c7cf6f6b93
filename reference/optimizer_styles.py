"""Optimizer code as its author wrote it: cs231n's per-array rules, read as a step.

``check_optimizer`` compares a step ``update(grads, state, params) ->
(new_params, new_state)`` with optax, the state in ``optimizer.init``'s layout
(``{"t": steps, "m": {key: array}, "v": {key: array}}``).  cs231n's
``optim.py`` writes each rule for one array instead, its state in a
``config`` dict the rule fills with its own defaults::

    next_w, config = adam(w, dw, config=None)

``cs231n_step(rule, optimizer)`` is that rule as a step, with no glue: each
parameter is updated by its own call, with its own ``config``.

* The hyperparameters are the optimizer's, under cs231n's names:
  ``learning_rate``; ``momentum``; ``decay_rate``, ``epsilon``; ``beta1``,
  ``beta2``, ``epsilon``.
* On the first step, from ``optimizer.init``'s state, ``config`` holds only
  those: the rule's own ``config.setdefault`` creates its state (``velocity``,
  ``cache``, ``m``, ``v``, ``t``), and what it creates is compared with
  optax's after the step.  A ``t`` that starts at 1 shows as ``t = 2,
  expected 1``.
* Its state is read back into ours: Adam's ``m``, ``v``, ``t`` and RMSProp's
  ``cache`` (our ``v``) are the same numbers; momentum's ``velocity`` is
  ``-learning_rate * m`` of optax's trace ``m ← μ m + g`` (so ``m =
  -velocity / learning_rate``), and its step count is kept here.

The rules' conventions are the optimizer's: cs231n's RMSProp puts ``epsilon``
outside the root (``RMSProp(eps_in_sqrt=False)``); given the default, the
diagnosis names it.

The deeplearning.ai course writes whole-dict functions instead, its
parameters keyed ``W1``, ``b1``, its gradients and moments ``dW1``, ``db1``;
``course_step(function, optimizer)`` takes them as written:

* ``update_parameters_with_gd(parameters, grads, learning_rate) -> parameters``
  (``SGD``);
* ``update_parameters_with_momentum(parameters, grads, v, beta,
  learning_rate) -> (parameters, v)``: the course's average ``v ← β v + (1 −
  β) dW`` is ``Momentum(momentum=β, dampening=β)``;
* ``update_parameters_with_adam(parameters, grads, v, s, t, learning_rate,
  beta1, beta2, epsilon) -> (parameters, v, s, ...)`` (``Adam``), called with
  ``t`` the number of this step (the course's loop adds 1 before the call).

Their state starts at zeros, as the course's ``initialize_velocity`` and
``initialize_adam`` make it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from manual_bp.optimizers import SGD, Adam, AdamW, Momentum, Optimizer, RMSProp
from manual_bp_reference.conventions import describe_value

Array = np.ndarray
Step = Callable[[dict, dict, dict], tuple[dict, dict]]
STYLES = ("step", "cs231n", "course")


class NotAStepError(Exception):
    """What the user's code returned is no step (in its own style's terms)."""


def hyperparameters(optimizer: Optimizer) -> dict[str, float]:
    """The optimizer's hyperparameters under cs231n's names."""
    if isinstance(optimizer, AdamW) or not isinstance(optimizer, SGD | Momentum | RMSProp | Adam):
        raise ValueError(
            f"optimizer: cs231n's optim.py has sgd, sgd_momentum, rmsprop and adam; got "
            f"{optimizer!r}"
        )
    names: dict[str, float] = {"learning_rate": optimizer.learning_rate}
    if isinstance(optimizer, Momentum):
        if optimizer.nesterov or optimizer.dampening:
            raise ValueError(
                "optimizer: cs231n's sgd_momentum is the heavy ball without dampening "
                f"(Momentum(nesterov=False, dampening=0)), got {optimizer!r}"
            )
        names["momentum"] = optimizer.momentum
    elif isinstance(optimizer, RMSProp):
        names.update(decay_rate=optimizer.decay, epsilon=optimizer.eps)
    elif isinstance(optimizer, Adam):
        names.update(beta1=optimizer.b1, beta2=optimizer.b2, epsilon=optimizer.eps)
    return names


def _slots(optimizer: Optimizer) -> dict[str, str]:
    """Our state slot -> the name of its ``config`` entry."""
    if isinstance(optimizer, Momentum):
        return {"m": "velocity"}
    if isinstance(optimizer, RMSProp):
        return {"v": "cache"}
    if isinstance(optimizer, Adam):
        return {"m": "m", "v": "v"}
    return {}


def _fresh(state: Mapping[str, Any]) -> bool:
    """Whether ``state`` is an ``init`` state: no step taken, every slot 0."""
    if state.get("t", 0) != 0:
        return False
    return all(
        not np.any(np.asarray(value))
        for slot, values in state.items()
        if slot != "t"
        for value in values.values()
    )


def cs231n_step(rule: Callable[..., object], optimizer: Optimizer) -> StyledStep:
    """cs231n's ``rule(w, dw, config) -> (next_w, config)`` as a step (module notes)."""
    hyper, slots = hyperparameters(optimizer), _slots(optimizer)
    rate = optimizer.learning_rate
    momentum = isinstance(optimizer, Momentum)

    def to_theirs(value: Array) -> Array:
        return -rate * value if momentum else value

    def to_ours(value: Array) -> Array:
        return -value / rate if momentum else value

    adam = isinstance(optimizer, Adam)
    # How far the rule's own counter runs ahead of the steps taken, as its
    # first step (from init) showed: 0 for the template (t from 0, incremented
    # before use); 1 for a rule that starts at 1 and increments after use.
    counter = {"offset": 0}

    def step(grads: dict, state: dict, params: dict) -> tuple[dict, dict]:
        fresh = _fresh(state)
        new_params: dict[str, object] = {}
        new_state: dict[str, Any] = {slot: {} for slot in slots}
        counts: list[object] = []
        for key in params:
            config: dict[str, object] = dict(hyper)
            if not fresh:
                for ours, theirs in slots.items():
                    config[theirs] = to_theirs(state[ours][key])
                if adam:
                    config["t"] = state["t"] + counter["offset"]
            result = rule(params[key], grads[key], config)
            if not (isinstance(result, tuple | list) and len(result) == 2):
                raise NotAStepError(
                    f"the rule returned {describe_value(result)} for {key!r}; expected "
                    "(next_w, config) from rule(w, dw, config)"
                )
            next_w, config = result
            if not isinstance(config, Mapping):
                raise NotAStepError(
                    f"the rule returned (next_w, {describe_value(config)}) for {key!r}; "
                    "expected config to be a dict"
                )
            new_params[key] = next_w
            for ours, theirs in slots.items():
                if theirs not in config:
                    raise NotAStepError(
                        f"the rule's config for {key!r} has no {theirs!r} after the step "
                        f"(it holds {sorted(map(str, config))})"
                    )
                new_state[ours][key] = to_ours(np.asarray(config[theirs]))
            counts.append(config.get("t"))
        if optimizer.counts_steps:
            # The steps taken; Adam's rule keeps its own count, read back (below).
            new_state["t"] = state["t"] + 1
        if adam:
            t = counts[0]
            if isinstance(t, bool) or not isinstance(t, int | np.integer):
                raise NotAStepError(
                    f"the rule's config holds t = {t!r} after the step; expected the step count"
                )
            if fresh:
                counter["offset"] = int(t) - 1
            styled.counter = (int(t), state["t"] + 1)
        return new_params, new_state

    styled = StyledStep(step, rule)
    return styled


class StyledStep:
    """A step made of the user's code in another style; ``last`` is the user
    function's last call (what it printed), as on a ``UserFunction``."""

    def __init__(self, step: Step, rule: Callable[..., object]) -> None:
        self.step, self.rule = step, rule
        # The rule's own t after its last call and the steps taken by then
        # (None for a rule that keeps no count).
        self.counter: tuple[int, int] | None = None

    def counter_lines(self) -> list[str]:
        """A line when the rule's own counter is not the number of steps taken."""
        if self.counter is None or self.counter[0] == self.counter[1]:
            return []
        t, steps = self.counter
        return [
            f"your rule's counter t is {t} after step {steps}, off by {t - steps:+d} (t counts "
            "the steps taken: 0 before the first, incremented before use)"
        ]

    def __call__(self, grads: dict, state: dict, params: dict) -> tuple[dict, dict]:
        return self.step(grads, state, params)

    @property
    def last(self) -> object:
        return getattr(self.rule, "last", None)


def course_hyperparameters(optimizer: Optimizer) -> tuple[float, ...]:
    """The arguments after the state the course's function takes, in order."""
    if isinstance(optimizer, AdamW) or not isinstance(optimizer, SGD | Momentum | Adam):
        raise ValueError(
            "optimizer: the course writes gradient descent, momentum and Adam "
            f"(SGD, Momentum(momentum=beta, dampening=beta), Adam); got {optimizer!r}"
        )
    if isinstance(optimizer, Momentum):
        if optimizer.nesterov or optimizer.dampening != optimizer.momentum:
            raise ValueError(
                "optimizer: the course's momentum averages, v = beta v + (1 - beta) dW: "
                f"Momentum(momentum=beta, dampening=beta), got {optimizer!r}"
            )
        return (optimizer.momentum, optimizer.learning_rate)
    if isinstance(optimizer, Adam):
        return (optimizer.learning_rate, optimizer.b1, optimizer.b2, optimizer.eps)
    return (optimizer.learning_rate,)


def course_arguments(optimizer: Optimizer) -> tuple[str, ...]:
    """The names of the course's function's arguments, in order."""
    if isinstance(optimizer, Adam):
        return ("parameters", "grads", "v", "s", "t", "learning_rate", "beta1", "beta2", "epsilon")
    if isinstance(optimizer, Momentum):
        return ("parameters", "grads", "v", "beta", "learning_rate")
    return ("parameters", "grads", "learning_rate")


def _course_name(key: str) -> str:
    """Our ``W1``, ``B1`` as the course's parameters name them: ``W1``, ``b1``."""
    return key.lower() if key[0] == "B" else key


def course_step(function: Callable[..., object], optimizer: Optimizer) -> StyledStep:
    """The course's whole-dict update function as a step (module notes)."""
    hyper = course_hyperparameters(optimizer)
    # Our slot -> the course's moment: Adam's v and s, momentum's v, none for SGD.
    slots = {slot: name for slot, name in zip(optimizer.SLOTS, ("v", "s"), strict=False)}

    def read(value: object, what: str, keys: list[str]) -> dict[str, object]:
        if not isinstance(value, Mapping) or any(key not in value for key in keys):
            have = sorted(map(str, value)) if isinstance(value, Mapping) else describe_value(value)
            raise NotAStepError(f"the function returned {what} {have}; expected keys {keys}")
        return {key: value[key] for key in keys}

    def step(grads: dict, state: dict, params: dict) -> tuple[dict, dict]:
        names = {key: _course_name(key) for key in params}
        parameters = {names[key]: params[key] for key in params}
        course_grads = {"d" + names[key]: grads[key] for key in params}
        moments = [{"d" + names[key]: state[slot][key] for key in params} for slot in slots]
        arguments: list[object] = [parameters, course_grads, *moments]
        if isinstance(optimizer, Adam):
            arguments.append(state["t"] + 1)  # the course's loop: t = t + 1, then the call
        result = function(*arguments, *hyper)
        if slots:
            if not (isinstance(result, tuple | list) and len(result) >= 1 + len(slots)):
                expected = ", ".join(["parameters", *slots.values()])
                raise NotAStepError(
                    f"the function returned {describe_value(result)}; expected ({expected}, ...)"
                )
            returned, *new_moments = result[: 1 + len(slots)]
        else:
            returned, new_moments = result, []
        new = read(returned, "parameters", list(parameters))
        new_params = {key: new[names[key]] for key in params}
        new_state: dict[str, Any] = {}
        for (slot, theirs), moment in zip(slots.items(), new_moments, strict=True):
            values = read(moment, theirs, list(course_grads))
            new_state[slot] = {key: values["d" + names[key]] for key in params}
        if optimizer.counts_steps:
            new_state["t"] = state["t"] + 1  # the course's loop counts, not the function
        return new_params, new_state

    return StyledStep(step, function)
