"""The product never imports jax; the demo runs."""

import subprocess
import sys

from manual_bp.cli import main


def test_manual_bp_never_imports_jax():
    code = (
        "import sys, manual_bp, manual_bp.cli, manual_bp.data, manual_bp.training;"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib')], 'jax'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_demo_trains_checks_every_gradient_and_reports_accuracy(capsys):
    assert main(["demo", "--epochs", "20", "--check-every", "10", "--samples", "60"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("err/tol") == 3  # epochs 0, 10 and 20
    assert "every gradient matched jax.grad" in printed
    assert "training accuracy" in printed


def test_demo_reports_bad_arguments_as_errors(capsys):
    assert main(["demo", "--samples", "0"]) == 2
    assert "m: expected an int >= 1" in capsys.readouterr().err
