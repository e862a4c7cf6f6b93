"""cs231n's optim.py rules checked as written (``check_optimizer(style="cs231n")``):
``rule(w, dw, config=None) -> (next_w, config)``, their own state defaults
included, with no adapter."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from manual_bp.optimizers import SGD, Adam, AdamW, Momentum, RMSProp
from manual_bp_reference.optimizer_check import OptimizerMismatch, check_optimizer
from manual_bp_reference.settings import Settings

# Buggy rules as students write them; the correct ones are benchmarks/cs231n_optim.py.
BUGGY = textwrap.dedent(
    """
    import numpy as np


    def adam_t_from_one(w, dw, config=None):  # the counter starts at 1, then += 1
        if config is None:
            config = {}
        config.setdefault("t", 1)
        config.setdefault("m", np.zeros_like(w))
        config.setdefault("v", np.zeros_like(w))
        config["t"] += 1
        config["m"] = config["beta1"] * config["m"] + (1 - config["beta1"]) * dw
        mt = config["m"] / (1 - config["beta1"] ** config["t"])
        config["v"] = config["beta2"] * config["v"] + (1 - config["beta2"]) * (dw**2)
        vt = config["v"] / (1 - config["beta2"] ** config["t"])
        next_w = w - config["learning_rate"] * mt / (np.sqrt(vt) + config["epsilon"])
        return next_w, config


    def adam_counts_after_use(w, dw, config=None):  # t from 1, used, then += 1: the same steps
        if config is None:
            config = {}
        config.setdefault("t", 1)
        config.setdefault("m", np.zeros_like(w))
        config.setdefault("v", np.zeros_like(w))
        config["m"] = config["beta1"] * config["m"] + (1 - config["beta1"]) * dw
        mt = config["m"] / (1 - config["beta1"] ** config["t"])
        config["v"] = config["beta2"] * config["v"] + (1 - config["beta2"]) * (dw**2)
        vt = config["v"] / (1 - config["beta2"] ** config["t"])
        config["t"] += 1
        next_w = w - config["learning_rate"] * mt / (np.sqrt(vt) + config["epsilon"])
        return next_w, config


    def momentum_sign_flipped(w, dw, config=None):
        config = config if config is not None else {}
        v = config.get("velocity", np.zeros_like(w))
        v = config["momentum"] * v + config["learning_rate"] * dw
        config["velocity"] = v
        return w + v, config


    def momentum_state_dropped(w, dw, config=None):
        config = config if config is not None else {}
        v = config.get("velocity", np.zeros_like(w))
        v = config["momentum"] * v - config["learning_rate"] * dw
        return w + v, config
    """
)
FEW = 12
# Factories, not objects: a module-level constructor call would turn a mutant
# that makes it raise into a collection error (docs/testing.md, "mutmut").
RULES = {
    "sgd": lambda: SGD(1e-2),
    "sgd_momentum": lambda: Momentum(1e-2, 0.9),
    # cs231n's eps is outside the root
    "rmsprop": lambda: RMSProp(1e-2, decay=0.99, eps_in_sqrt=False),
    "adam": lambda: Adam(1e-3),
}


CORRECT = Path(__file__).resolve().parent.parent / "benchmarks" / "cs231n_optim.py"


@pytest.fixture(scope="module")
def optim(tmp_path_factory):
    path = tmp_path_factory.mktemp("cs231n") / "buggy_optim.py"
    path.write_text(BUGGY)
    return lambda name: f"{CORRECT if name in RULES else path}:{name}"


@pytest.mark.parametrize("warm", [False, True])
@pytest.mark.parametrize("name", sorted(RULES))
def test_each_rule_passes_as_written(optim, name, warm):
    report = check_optimizer(
        optim(name),
        RULES[name](),
        style="cs231n",
        warm_start=warm,
        settings=Settings(max_examples=FEW),
    )
    assert report.examples == FEW
    # Writing into config is the rules' contract, not a note.
    written = [note for note in report.notes if "wrote into its arguments" in note]
    assert not any("config[" in note or "(config" in note for note in written), written


def test_a_counter_that_starts_at_one_is_named(optim):
    with pytest.raises(OptimizerMismatch) as raised:
        check_optimizer(
            optim("adam_t_from_one"),
            Adam(1e-3),
            style="cs231n",
            settings=Settings(max_examples=FEW),
        )
    assert raised.value.verdict == "wrong"
    assert "your rule's counter t is 2 after step 1, off by +1" in str(raised.value)


def test_a_counter_that_runs_ahead_but_takes_the_same_steps_is_a_note(optim):
    """t starts at 1 and is incremented after use: the bias corrections are
    optax's, only the stored count differs.  Correct code: a pass, with a note."""
    report = check_optimizer(
        optim("adam_counts_after_use"),
        Adam(1e-3),
        style="cs231n",
        settings=Settings(max_examples=FEW),
    )
    assert any("off by +1" in note and "the steps are the same" in note for note in report.notes)


def test_the_rules_own_convention_is_named_when_not_declared(optim):
    with pytest.raises(OptimizerMismatch) as raised:
        check_optimizer(
            optim("rmsprop"),
            RMSProp(1e-2, decay=0.99),
            style="cs231n",
            settings=Settings(max_examples=FEW),
        )
    assert "puts eps outside the sqrt" in str(raised.value)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("momentum_sign_flipped", "params["),
        ("momentum_state_dropped", "has no 'velocity' after the step"),
    ],
)
def test_a_wrong_rule_is_caught(optim, name, expected):
    with pytest.raises(OptimizerMismatch) as raised:
        check_optimizer(
            optim(name), Momentum(1e-2, 0.9), style="cs231n", settings=Settings(max_examples=FEW)
        )
    assert raised.value.verdict == "wrong"
    assert expected in str(raised.value)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"style": "keras"}, "style: expected one of ['step', 'cs231n', 'course']"),
        ({"style": "cs231n", "init": "x.py:init"}, "init: a cs231n rule creates its own state"),
    ],
)
def test_bad_style_arguments_are_refused(optim, arguments, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_optimizer(optim("sgd"), SGD(1e-2), **arguments)


@pytest.mark.parametrize(
    "optimizer", [AdamW(1e-3), Momentum(1e-2, 0.9, nesterov=True)], ids=["adamw", "nesterov"]
)
def test_an_optimizer_optim_py_does_not_have_is_refused(optim, optimizer):
    with pytest.raises(ValueError, match="optimizer: cs231n"):
        check_optimizer(optim("sgd"), optimizer, style="cs231n")


COURSE = Path(__file__).resolve().parent.parent / "benchmarks" / "course_optim.py"
COURSE_FUNCTIONS = {
    "update_parameters_with_gd": SGD(0.01),
    "update_parameters_with_momentum": Momentum(0.01, 0.9, dampening=0.9),
    "update_parameters_with_adam": Adam(0.01),
}


@pytest.mark.parametrize("warm", [False, True])
@pytest.mark.parametrize("name", sorted(COURSE_FUNCTIONS))
def test_each_course_function_passes_as_written(name, warm):
    report = check_optimizer(
        f"{COURSE}:{name}",
        COURSE_FUNCTIONS[name],
        style="course",
        warm_start=warm,
        settings=Settings(max_examples=FEW),
    )
    assert report.examples == FEW
    assert not any("wrote into its arguments" in note for note in report.notes), report.notes


def test_the_courses_float64_powers_are_a_dtype_note_not_a_failure():
    """``np.power(beta1, t)`` is a float64 scalar: the course's Adam turns float32
    params into float64.  The values are right: a note, judged in float32."""
    report = check_optimizer(
        f"{COURSE}:update_parameters_with_adam",
        Adam(0.01),
        style="course",
        settings=Settings(dtype="float32", max_examples=FEW),
    )
    assert any("dtype float64 returned for float32 params" in note for note in report.notes)


def test_a_course_momentum_without_its_average_is_caught(tmp_path):
    path = tmp_path / "momentum.py"
    path.write_text(
        textwrap.dedent(
            """
            def update_parameters_with_momentum(parameters, grads, v, beta, learning_rate):
                for key in grads:
                    v[key] = beta * v[key] + grads[key]  # forgot (1 - beta)
                    name = key[1:]
                    parameters[name] = parameters[name] - learning_rate * v[key]
                return parameters, v
            """
        )
    )
    with pytest.raises(OptimizerMismatch) as raised:
        check_optimizer(
            f"{path}:update_parameters_with_momentum",
            COURSE_FUNCTIONS["update_parameters_with_momentum"],
            style="course",
            settings=Settings(max_examples=FEW),
        )
    assert raised.value.verdict == "wrong"
    assert "adds the whole gradient" in str(raised.value)


def test_the_course_style_refuses_a_momentum_it_does_not_write():
    with pytest.raises(ValueError, match="the course's momentum averages"):
        check_optimizer(f"{COURSE}:update_parameters_with_momentum", Momentum(0.01, 0.9),
                        style="course")  # fmt: skip
