"""``manual-bp train`` on tiny networks: output lines, PNGs, history.csv, exit codes.

The plots are drawn headless: ``manual_bp.cli.plots`` never touches pyplot,
it saves ``matplotlib.figure.Figure`` objects with the Agg renderer.
"""

import contextlib
import csv
import io
import struct
import sys

import numpy as np
import pytest

from manual_bp import DNN, network, training
from manual_bp.cli import main
from manual_bp.data import DATASETS

# Tiny run: 40 samples in mini-batches of 16, 16 and 8, 6 epochs, checks at 0, 3, 6.
EPOCHS = 6
MOONS = [
    "train", "--dataset", "moons", "--samples", "40", "--layers", "2,4,1",
    "--epochs", str(EPOCHS), "--batch-size", "16", "--learning-rate", "0.5",
    "--check-every", "3", "--seed", "0",
]  # fmt: skip
# figsize (inches) x dpi 100, as manual_bp.cli.plots.FIGURE_SIZES says: (width, height) pixels.
PNG_SIZES = {"loss.png": (800, 500), "boundary.png": (600, 540), "gradient_check.png": (800, 450)}


def run(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` with its exit code (argparse's too), stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argument types: argparse exits, 2 for a bad one
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


def png_size(path) -> tuple[int, int]:
    """(width, height) from the PNG's IHDR chunk, after checking the signature."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR"
    return struct.unpack(">II", header[16:24])


def read_history(path) -> tuple[list[str], np.ndarray]:
    with path.open() as file:
        rows = list(csv.reader(file))
    return rows[0], np.array(rows[1:], dtype=float)


def wrong_dW1(
    monkeypatch: pytest.MonkeyPatch, factor: float = 1.001, in_training: bool = True
) -> None:
    """Make the hand-written backward return ``factor * dW1`` where the checks call it,
    and in ``training.fit`` too unless ``in_training=False``."""
    import manual_bp_reference.cases

    def backward(*args, **kwargs):
        grads = network.backward(*args, **kwargs)
        return {**grads, "W1": factor * grads["W1"]}

    for module in (manual_bp_reference.cases,) + ((training,) if in_training else ()):
        monkeypatch.setattr(module, "backward", backward)


@pytest.fixture(scope="module")
def moons_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "new" / "folder"  # created by the command
    code, stdout, stderr = run(
        [*MOONS, "--out", str(out), "--save", str(out.parent.parent / "moons.npz")]
    )
    return code, stdout, stderr, out


def test_train_saves_the_trained_net_with_save(moons_run):
    from manual_bp import DNN

    code, stdout, _, out = moons_run
    path = out.parent.parent / "moons.npz"
    assert code == 0 and f"wrote {path}" in stdout
    net = DNN.load(path)
    assert net.layer_sizes == (2, 4, 1) and net.activations == ("tanh", "sigmoid")
    X, Y = DATASETS["moons"](40, seed=0)
    _, history = read_history(out / "history.csv")
    assert net.loss(X, Y) == history[-1, 1]  # the manual net after the last epoch, exactly


@pytest.mark.parametrize(
    ("save", "message"),
    [("{tmp}/no/such/folder/m.npz", "does not exist"), ("{tmp}", "is a folder")],
)
def test_a_save_path_that_cannot_be_written_is_refused_before_any_work(save, message, tmp_path):
    save = save.format(tmp=tmp_path)
    code, stdout, stderr = run([*MOONS, "--out", str(tmp_path / "out"), "--save", save])
    assert code == 2 and stdout == "" and "--save: " in stderr and message in stderr
    assert not (tmp_path / "out").exists()


def test_train_exits_0_and_prints_a_verdict_per_check(moons_run):
    code, stdout, _, _ = moons_run
    assert code == 0
    verdicts = [line for line in stdout.splitlines() if "gradients vs jax.grad" in line]
    assert [line.split(":")[0] for line in verdicts] == ["epoch 0", "epoch 3", "epoch 6"]
    assert all("all match" in line and "worst error/tolerance" in line for line in verdicts)
    assert "they coincide: below 1e-06" in stdout
    assert stdout.rstrip().endswith("every gradient matched jax.grad in 3 checks")
    assert "DNN(layer_sizes=[2, 4, 1], activations=['tanh', 'sigmoid']" in stdout


def test_train_draws_no_progress_bar_when_stderr_is_not_a_terminal(moons_run):
    _, _, stderr, _ = moons_run
    assert "\r" not in stderr and "training" not in stderr  # the bar: test_cli_progress.py


def test_train_writes_pngs_of_the_documented_size(moons_run):
    from matplotlib.image import imread

    out = moons_run[3]
    for name, (width, height) in PNG_SIZES.items():
        assert png_size(out / name) == (width, height), name
        assert imread(out / name).shape[:2] == (height, width), name  # it decodes


def test_history_holds_the_manual_training_and_a_coinciding_autodiff_curve(moons_run):
    _, stdout, _, out = moons_run
    header, history = read_history(out / "history.csv")
    assert header == ["epoch", "manual_loss", "autodiff_loss"]
    np.testing.assert_array_equal(history[:, 0], np.arange(EPOCHS + 1))
    # The manual column is DNN.fit's own history from the same start.
    X, Y = DATASETS["moons"](40, seed=0)
    net = DNN([2, 4, 1], ["tanh", "sigmoid"], "binary_cross_entropy", seed=0)
    expected = [net.loss(X, Y), *net.fit(X, Y, EPOCHS, 0.5, batch_size=16)]
    np.testing.assert_array_equal(history[:, 1], expected)
    # Same start, same mini-batches: the curves differ by rounding only.  Measured:
    # 2.0e-16 relative here.  1e-12 leaves room for another BLAS, yet catches a
    # dW1 wrong by 1e-9 relative: that moves these losses by 2e-10 (measured).
    assert history[0, 1] == history[0, 2]
    np.testing.assert_allclose(history[:, 2], history[:, 1], rtol=1e-12, atol=0)
    assert history[-1, 1] < history[0, 1]
    reported = float(
        stdout.split("max relative difference manual vs jax.grad + optax training ")[1][:8]
    )
    measured = np.max(np.abs(history[:, 1] - history[:, 2]) / history[:, 2])
    assert reported == pytest.approx(measured, rel=1e-2, abs=1e-30)


def test_blobs_trains_a_softmax_net_on_one_hot_targets(tmp_path):
    code, stdout, _ = run(
        ["train", "--dataset", "blobs", "--classes", "3", "--samples", "40", "--layers", "2,4,3",
         "--epochs", "2", "--batch-size", "16", "--check-every", "0", "--out", str(tmp_path)]
    )  # fmt: skip
    assert code == 0, stdout
    assert "activations=['tanh', 'softmax'], loss='cross_entropy'" in stdout
    assert stdout.count("gradients vs jax.grad: all match") == 2  # epochs 0 and 2
    assert png_size(tmp_path / "boundary.png") == PNG_SIZES["boundary.png"]
    assert len(read_history(tmp_path / "history.csv")[1]) == 3


def test_a_wrong_hand_written_gradient_fails_the_checks_and_the_curves(tmp_path, monkeypatch):
    wrong_dW1(monkeypatch)
    code, stdout, _ = run([*MOONS, "--out", str(tmp_path)])
    assert code == 1
    assert "gradients vs jax.grad: MISMATCH" in stdout
    assert [line.split()[0] for line in stdout.splitlines() if " entries fail" in line] == [
        "W1"
    ] * 3  # the report names the variable at each of the 3 checks
    assert "they DIFFER" in stdout and stdout.rstrip().endswith(
        "GRADIENT MISMATCH (see the reports above)"
    )
    _, history = read_history(tmp_path / "history.csv")
    assert np.max(np.abs(history[1:, 1] / history[1:, 2] - 1)) > 1e-6


def test_a_failing_check_alone_exits_1(tmp_path, monkeypatch):
    # Training stays right (the curves coincide); only the checked gradients are wrong.
    wrong_dW1(monkeypatch, in_training=False)
    code, stdout, _ = run([*MOONS, "--out", str(tmp_path)])
    assert code == 1
    assert "they coincide" in stdout and stdout.rstrip().endswith(
        "GRADIENT MISMATCH (see the reports above)"
    )


def test_divergence_exits_1_naming_the_epoch(tmp_path):
    code, _, stderr = run(
        [
            *MOONS,
            "--loss",
            "mse",
            "--activations",
            "relu",
            "--learning-rate",
            "1e6",
            "--out",
            str(tmp_path),
        ]
    )  # relu hidden layer, identity output: the first epoch overflows (measured)
    assert code == 1
    assert "became NaN or inf in epoch 1 (learning_rate=1000000.0)" in stderr


def test_a_net_without_hidden_layers_gets_the_losss_output_activation(tmp_path):
    code, stdout, _ = run(["train", "--layers", "2,1", "--epochs", "1", "--samples", "40",
                           "--out", str(tmp_path)])  # fmt: skip
    assert code == 0
    assert "activations=['sigmoid']" in stdout


def test_an_out_folder_that_cannot_be_made_is_refused_before_training(capsys):
    assert main(["train", "--epochs", "1", "--out", "/dev/null/x"]) == 2
    captured = capsys.readouterr()
    assert "--out: cannot create the folder '/dev/null/x'" in captured.err
    assert "training on" not in captured.out


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--layers", "3,4,1"], "--layers: the data sets are 2-D, so the first size n0 must be 2"),
        (["--layers", "2,4,2"], "--layers: moons has binary labels"),
        (["--dataset", "blobs", "--layers", "2,4,1"], "the last size nL must be 3, got 1"),
        (["--activations", "tanh,nope"], "--activations"),
        (["--classes", "3"], "--classes: only the blobs data set"),
        (["--noise", "-1"], "--noise: expected a finite float >= 0"),
        (["--learning-rate", "0"], "--learning-rate: expected a finite number > 0"),
        (["--learning-rate", "inf"], "--learning-rate: expected a finite number > 0, got inf"),
        (["--check-every", "-1"], "--check-every: expected an int >= 0"),
        (["--optimizer", "adam:b1=1.5"], "--optimizer: b1: expected a finite float in [0.0, 1.0)"),
        (["--optimizer", "rmsprop:eps_in_sqr=false"], "--optimizer: rmsprop has the options"),
        (["--optimizer", "sgd", "--learning-rate", "-1"], "--learning-rate: expected a finite"),
        (["--l2", "-0.1"], "argument --l2: expected a finite float >= 0, got -0.1"),
        (["--dropout", "1"], "--dropout: dropout: expected drop probabilities in [0, 1), got 1.0"),
        (["--dropout", "0.5,x"], "argument --dropout: expected finite numbers, got x"),
        (
            ["--dropout", "0.5,0.5,0.5"],
            "--dropout: dropout: expected one probability per hidden layer (2), got 3",
        ),
        (["--normalization", "batchnorm"], "--normalization: invalid choice: 'batchnorm'"),
        (["--layers", "2,1", "--normalization", "batch"], "--normalization: the step sits in"),
    ],
)
def test_bad_arguments_exit_2_naming_the_argument(arguments, message, tmp_path):
    code, _, stderr = run(["train", "--epochs", "1", "--out", str(tmp_path), *arguments])
    assert code == 2
    assert message in stderr
    assert not (tmp_path / "history.csv").exists()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("adagrad", "expected one of sgd, momentum, rmsprop, adam, adamw"),
        ("adam:b1", "expected key=value after adam:, got 'b1'"),
        ("adam:b1=high", "b1: expected true, false or a number, got 'high'"),
    ],
)
def test_a_bad_optimizer_spec_is_refused_by_argparse(spec, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--optimizer", spec])
    assert exit_.value.code == 2
    assert f"argument --optimizer: {message}" in capsys.readouterr().err


def test_train_with_adam_overlays_the_hand_written_and_optax_curves(tmp_path):
    arguments = [*MOONS, "--optimizer", "adam:eps_root=1e-12", "--out", str(tmp_path)]
    arguments[arguments.index("--learning-rate") + 1] = "0.05"
    code, stdout, _ = run(arguments)
    assert code == 0, stdout
    assert "Adam(learning_rate=0.05, b1=0.9, b2=0.999, eps=1e-08, eps_root=1e-12" in stdout
    _, history = read_history(tmp_path / "history.csv")
    # Same start and mini-batches, hand-written Adam vs optax.adam: rounding only
    # (measured 2e-15 relative over 100 epochs of the default net).
    np.testing.assert_allclose(history[:, 2], history[:, 1], rtol=1e-12, atol=0)
    # and it trains the net like DNN.fit with the same optimizer does
    from manual_bp.optimizers import Adam

    X, Y = DATASETS["moons"](40, seed=0)
    net = DNN([2, 4, 1], ["tanh", "sigmoid"], seed=0)
    adam = Adam(0.05, eps_root=1e-12)
    expected = [net.loss(X, Y), *net.fit(X, Y, EPOCHS, batch_size=16, optimizer=adam)]
    np.testing.assert_array_equal(history[:, 1], expected)


@pytest.mark.parametrize("option", ["--epochs", "--samples", "--batch-size"])
def test_non_positive_counts_are_refused_by_argparse(option, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", option, "0"])
    assert exit_.value.code == 2
    assert f"argument {option}: expected an integer >= 1" in capsys.readouterr().err


def test_help_lists_the_options_with_examples(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--help"])
    assert exit_.value.code == 0
    printed = capsys.readouterr().out
    assert "examples:" in printed and "manual-bp train --dataset blobs" in printed
    for option in ("--dataset", "--layers", "--check-every", "--out"):
        assert option in printed


def test_without_matplotlib_it_says_which_extra_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    code, _, stderr = run(["train", "--out", str(tmp_path)])
    assert code == 2
    assert "pip install 'manual-bp[plots]'" in stderr


def test_without_jax_it_says_which_extra_to_install(monkeypatch, tmp_path):
    # Forget the oracle modules (monkeypatch puts them back) and make jax unimportable.
    for name in (
        "manual_bp_reference.autodiff_training",
        "manual_bp_reference.compare",
        "manual_bp_reference.oracle",
        "manual_bp_reference.optimizer_oracle",
    ):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setitem(sys.modules, "jax", None)
    code, _, stderr = run(["train", "--out", str(tmp_path)])
    assert code == 2
    assert "train needs jax" in stderr and "pip install 'manual-bp[oracle]'" in stderr


@pytest.mark.deep  # two trainings
def test_train_with_decay_and_dropout_matches_fit_and_the_autodiff_curve(tmp_path):
    """--l2 and --dropout: the manual curve is DNN.fit's with the same settings
    (the same masks from the same seed), jax.grad's coincides with it, and the
    gradient checks (on masks of their own) pass."""
    arguments = [*MOONS, "--l2", "0.01", "--dropout", "0.25", "--out", str(tmp_path)]
    arguments[arguments.index("--layers") + 1] = "2,6,5,1"
    code, stdout, _ = run(arguments)
    assert code == 0, stdout
    assert "l2=0.01, dropout=[0.25, 0.25]" in stdout
    _, history = read_history(tmp_path / "history.csv")
    np.testing.assert_allclose(history[:, 2], history[:, 1], rtol=1e-12, atol=0)
    X, Y = DATASETS["moons"](40, seed=0)
    net = DNN([2, 6, 5, 1], ["tanh", "tanh", "sigmoid"], seed=0, l2=0.01, dropout=0.25)
    expected = [net.loss(X, Y), *net.fit(X, Y, EPOCHS, learning_rate=0.5, batch_size=16)]
    np.testing.assert_array_equal(history[:, 1], expected)


@pytest.mark.deep  # two trainings and their figures
def test_train_with_normalization_plots_the_curves_with_and_without(tmp_path):
    """--normalization batch: the normalized net's gradients are checked, the same
    net without normalization (same start, same mini-batches) trains beside it,
    normalization.png shows both, and --save keeps gamma, beta and running."""
    layers = ["--layers", "2,4,4,1", "--samples", "40", "--batch-size", "16", "--seed", "0"]
    saved = tmp_path / "bn.npz"
    code, stdout, _ = run(
        ["train", *layers, "--epochs", "2", "--learning-rate", "0.5", "--check-every", "0",
         "--normalization", "batch", "--save", str(saved), "--out", str(tmp_path)]
    )  # fmt: skip
    assert code == 0, stdout
    assert "normalization=['batch', 'batch']" in stdout
    assert stdout.count("gradients vs jax.grad: all match") == 2
    assert png_size(tmp_path / "normalization.png") == PNG_SIZES["loss.png"]
    X, Y = DATASETS["moons"](40, seed=0)
    plain = DNN([2, 4, 4, 1], ["tanh", "tanh", "sigmoid"], seed=0)
    without = plain.fit(X, Y, 2, learning_rate=0.5, batch_size=16)[-1]
    assert f"{without:.6g} without (same start, same mini-batches)" in stdout
    loaded = DNN.load(saved)
    assert loaded.normalization == ("batch", "batch", None) and sorted(loaded.running) == [
        "running_mean1", "running_mean2", "running_var1", "running_var2",
    ]  # fmt: skip
