"""The research walkthroughs: examples/dp_sgd_walkthrough.py and examples/hessian_spectrum.py.

Each script runs with small settings into ``tmp_path``: its hand-written
quantities agree with jax (per-example gradients with ``jax.vmap(jax.grad)``,
Lanczos Ritz values with the eigenvalues of ``jax.hessian``), DP-SGD learns,
the PNG is written, and a bad flag exits 2 naming the flag.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from property_tests.budget import examples

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PNG = b"\x89PNG\r\n\x1a\n"


def load(name: str) -> ModuleType:
    """An example script, read by path (``examples/`` is not a package)."""
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # the dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dp() -> ModuleType:
    return load("dp_sgd_walkthrough")


@pytest.fixture(scope="module")
def spectrum() -> ModuleType:
    return load("hessian_spectrum")


# --- DP-SGD --------------------------------------------------------------------------------


def test_dp_sgd_walkthrough_checks_learns_and_draws(dp, tmp_path, capsys):
    out = tmp_path / "norms.png"
    run = dp.main(["--epochs", "3", "--check-every", "4", "--out", str(out)])
    printed = capsys.readouterr().out
    # 8 steps an epoch, checks at steps 0, 4, ..., 20.
    assert [step for step, _ in run.checks] == [0, 4, 8, 12, 16, 20]
    # Relative to the largest entry, the per-example gradients differ by rounding
    # only: a few units of 2^-52 ≈ 2.2e-16 through 3 layers (measured 4e-16 .. 7e-16).
    assert run.worst_difference < 1e-13, run.checks
    assert len(run.dp_accuracy) == len(run.sgd_accuracy) == 3
    assert run.dp_test_accuracy > 0.7  # chance: 0.5 (the moons are balanced)
    assert run.sgd_test_accuracy > 0.7
    assert run.start.before.shape == (dp.TRAIN,) and np.all(run.end.after <= run.end.clip)
    assert out.read_bytes()[:8] == PNG
    assert "jax.vmap(jax.grad)" in printed and "DP-SGD acc" in printed


def test_no_noise_and_a_huge_clip_is_plain_sgd(dp, tmp_path):
    # clip so large that nothing is clipped, σ = 0: DP-SGD's step is the mean gradient's.
    run = dp.main(
        ["--epochs", "1", "--clip", "1e9", "--sigma", "0", "--out", str(tmp_path / "n.png")]
    )
    assert run.start.clipped_fraction == 0
    assert abs(run.dp_accuracy[0] - run.sgd_accuracy[0]) < 1e-12


# --- Lanczos -------------------------------------------------------------------------------


@examples(0.3)
@given(st.integers(1, 12), st.integers(0, 2**32 - 1))
def test_lanczos_with_full_reorthogonalisation_finds_every_eigenvalue(spectrum, n, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n))
    A = A + A.T
    record = spectrum.lanczos(lambda v: A @ v, n, n, seed=seed)
    exact = np.linalg.eigvalsh(A)
    # A random q1 has every eigenvector's component, so k = n iterations span R^n
    # (or stop at an invariant subspace, whose Ritz values are exact ones).
    ritz = record.ritz()
    scale = max(float(np.max(np.abs(exact))), 1.0)
    if len(ritz) == n:
        np.testing.assert_allclose(ritz, exact, rtol=0, atol=1e-10 * scale)
    else:
        assert all(np.min(np.abs(exact - value)) < 1e-10 * scale for value in ritz)


def test_flatten_and_unflatten_are_inverse(spectrum):
    params = {"W1": np.arange(6.0).reshape(3, 2), "B1": np.ones((3, 1))}
    theta = spectrum.flatten(params)
    assert theta.shape == (9,)
    back = spectrum.unflatten(theta, params)
    assert list(back) == ["W1", "B1"]
    for key in params:
        np.testing.assert_array_equal(back[key], params[key])


def test_hessian_spectrum_matches_jax_hessian(spectrum, tmp_path, capsys):
    out = tmp_path / "spectrum.png"
    run = spectrum.main(["--k", "25", "--steps", "50", "--out", str(out)])
    printed = capsys.readouterr().out
    assert run.eigenvalues.shape == (105,) and run.ritz.shape == (25,)
    # The largest eigenvalues converge first; after 25 iterations the top five
    # agree with jax's to rounding relative to max|eig| (measured ~1e-15).
    assert run.top_relative_difference < 1e-8, (run.ritz[-5:], run.eigenvalues[-5:])
    assert run.all_relative_difference is None
    assert out.read_bytes()[:8] == PNG
    assert "jax.hessian" in printed and "Lanczos" in printed


# --- bad flags -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "script, argv, message",
    [
        ("dp", ["--epochs", "0"], "argument --epochs: expected an int >= 1, got 0"),
        ("dp", ["--clip", "0"], "argument --clip: expected a float > 0, got 0.0"),
        ("dp", ["--sigma", "-1"], "argument --sigma: expected a float >= 0, got -1.0"),
        ("dp", ["--lr", "fast"], "argument --lr: expected a float > 0, got 'fast'"),
        ("dp", ["--out", "n.svg"], "argument --out: expected a path ending in .png"),
        ("spectrum", ["--k", "0"], "argument --k: expected an int >= 1, got 0"),
        ("spectrum", ["--steps", "x"], "argument --steps: expected an int >= 0, got 'x'"),
        ("spectrum", ["--out", "/no/such/folder/s.png"], "expected an existing folder"),
        ("spectrum", ["--lanczos"], "unrecognized arguments: --lanczos"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(dp, spectrum, capsys, script, argv, message):
    module = {"dp": dp, "spectrum": spectrum}[script]
    with pytest.raises(SystemExit) as stopped:
        module.main(argv)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err
