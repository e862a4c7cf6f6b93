"""Every command checks every argument before any work, under the flag's own name,
in one line with exit status 2; every command has --help with a description,
defaults and examples; one alias rule everywhere; resource errors are one line."""

import argparse
import contextlib
import io

import numpy as np
import pytest

import manual_bp.network
from manual_bp.cli import COMMANDS, build_parser, command_parsers, main
from manual_bp.cli.arguments import ALIASES

NAMES = [command.__name__.rsplit(".", 1)[1] for command in COMMANDS]


def run(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)``: exit code (argparse's too), stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("name", NAMES)
def test_help_has_a_description_defaults_and_examples(name):
    parser = command_parsers(build_parser())[name]
    assert parser.description and len(parser.description) > 40, name
    assert "examples:" in parser.epilog and f"manual-bp {name}" in parser.epilog, name
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help and "default" in action.help, (name, action.option_strings)
    code, printed, _ = run([name, "--help"])
    assert code == 0 and "examples:" in printed and "(default" in printed


# (command, option, bad value, start of the message after "argument OPTION: ")
BAD = [
    ("demo", "--samples", "0", "expected an integer >= 1"),
    ("demo", "--epochs", "-3", "expected an integer >= 1"),
    ("demo", "--batch-size", "0", "expected an integer >= 1"),
    ("demo", "--check-every", "-1", "expected an int >= 0"),
    ("demo", "--learning-rate", "0", "expected a finite number > 0"),
    ("demo", "--learning-rate", "nan", "expected a finite number > 0"),
    ("demo", "--noise", "-0.5", "expected a finite float >= 0"),
    ("demo", "--seed", "-1", "expected an int >= 0"),
    ("demo", "--dataset", "iris", "invalid choice"),
    ("train", "--seed", "x", "expected an int >= 0"),
    ("train", "--samples", "0", "expected an integer >= 1"),
    ("train", "--check-every", "-1", "expected an int >= 0"),
    ("train", "--learning-rate", "inf", "expected a finite number > 0"),
    ("train", "--layers", "2,x,1", "expected comma-separated integers"),
    ("compare", "--seed", "-2", "expected an int >= 0"),
    ("compare", "--batch", "0", "expected an integer >= 1"),
    ("compare", "--dtype", "float16", "invalid choice"),
    ("explain", "--batch", "-1", "expected an integer >= 1"),
    ("audit", "--depths", "1,0", "expected an int >= 1, got 0"),
    ("audit", "--dtypes", "float16", "dtype: expected one of"),
    ("audit", "--activations", "tanh,nope", "activations[1]"),
    ("audit", "--seed", "-1", "expected an int >= 0"),
]


@pytest.mark.parametrize(("name", "option", "value", "message"), BAD)
def test_a_bad_argument_is_one_line_naming_the_flag_before_any_work(
    name, option, value, message, tmp_path
):
    code, printed, error = run([name, option, value, "--out", str(tmp_path / "out")])
    assert code == 2
    assert printed == ""  # nothing ran: no table, no epoch 0
    assert error.count("\n") == 1 and error.startswith(f"manual-bp {name}: error: "), error
    assert f"argument {option}: {message}" in error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["demo", "train"])
def test_lr_is_learning_rate_everywhere_and_prefixes_work(name):
    sub = command_parsers(build_parser())[name]
    for alias in ALIASES["--learning-rate"]:
        assert sub.parse_args([alias, "0.25"]).learning_rate == 0.25
    assert sub.parse_args(["--learn", "0.125"]).learning_rate == 0.125  # unambiguous prefix


def test_every_option_with_an_alias_has_it_in_every_command():
    for sub in command_parsers(build_parser()).values():
        for option, aliases in ALIASES.items():
            if option in sub._option_string_actions:
                for alias in aliases:
                    assert sub._option_string_actions[alias] is sub._option_string_actions[option]


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["train", "--learning_rate", "0.1"], "--learning_rate: did you mean --learning-rate?"),
        (
            ["demo", "--epoch", "3", "--sample", "5", "--sampels", "9"],
            "--sampels: did you mean --samples?",
        ),
        (["compare", "--finite-difference"], "did you mean --finite-diff?"),
    ],
)
def test_an_unknown_option_gets_a_suggestion_in_one_line(argv, hint):
    code, printed, error = run(argv)
    assert code == 2 and printed == "" and error.count("\n") == 1
    assert "unrecognized arguments" in error and hint in error


def test_demo_checks_its_arguments_before_printing_anything():
    code, printed, error = run(["demo", "--epochs", "5", "--check-every", "-1"])
    assert (code, printed) == (2, "") and "--check-every" in error


def test_demo_trains_a_softmax_net_sized_to_blobs(capsys):
    code, printed, _ = run(
        ["demo", "--dataset", "blobs", "--epochs", "40", "--check-every", "20", "--samples", "60"]
    )
    assert code == 0, printed
    assert "DNN(layer_sizes=[2, 3, 3, 3], activations=['sigmoid', 'sigmoid', 'softmax']" in printed
    assert "loss='cross_entropy'" in printed and printed.count("err/tol") == 3
    accuracy = float(printed.split("training accuracy ")[1].split("%")[0])
    assert accuracy > 90, printed


def test_explain_describes_without_allocating_a_network(monkeypatch, tmp_path):
    def no_weights(*args, **kwargs):
        raise AssertionError("explain drew weights for a network it only describes")

    monkeypatch.setattr(manual_bp.network, "init_params", no_weights)
    code, printed, error = run(["explain", "--layers", "2,100000,100000,1", "--out", str(tmp_path)])
    assert code == 0, error
    assert "dW2 = dZ2 · A1ᵀ" in printed and "(100000, 100000)" in printed


def test_out_of_memory_is_one_line_with_exit_status_2(monkeypatch, tmp_path):
    def too_big(*args, **kwargs):
        return np.empty((10**6, 10**6))  # 7.3 TiB: numpy's _ArrayMemoryError

    monkeypatch.setattr(manual_bp.network, "init_params", too_big)
    code, printed, error = run(["compare", "--layers", "2,100000,100000,1", "--out", str(tmp_path)])
    assert code == 2 and printed == ""
    assert error.count("\n") == 1 and "Traceback" not in error
    assert error.startswith("manual-bp compare: error: out of memory (Unable to allocate")
    assert "smaller --layers" in error
