"""The product never imports jax; the demo runs."""

import subprocess
import sys

import pytest

from manual_bp.cli import main


def test_manual_bp_never_imports_jax():
    code = (
        "import sys, manual_bp, manual_bp.cli, manual_bp.data, manual_bp.training;"
        "import manual_bp.optimizers;"
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
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--samples", "0"])
    assert exit_.value.code == 2
    assert "argument --samples: expected an integer >= 1, got 0" in capsys.readouterr().err


def test_a_wheel_holds_every_package_and_subpackage():
    """Only editable installs see packages that pyproject.toml does not list."""
    import tomllib
    from fnmatch import fnmatch
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    config = tomllib.loads((root / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]

    def packages(*tops: str) -> set[str]:
        return {
            ".".join(init.parent.relative_to(root).parts)
            for top in tops
            for init in (root / top).rglob("__init__.py")
        }

    def shipped(package: str) -> bool:
        return any(fnmatch(package, pattern) for pattern in include)

    product = packages("manual_bp", "reference")
    assert "manual_bp.cli" in product
    assert [p for p in product if not shipped(p)] == []
    # Tests and benchmarks stay out of the wheel: nothing in the product imports them.
    assert [p for p in packages("property_tests", "benchmarks") if shipped(p)] == []


def test_the_version_is_written_once_in_pyproject():
    import tomllib
    from pathlib import Path

    import manual_bp

    root = Path(__file__).resolve().parent.parent
    version = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    assert manual_bp.__version__ == version
    assert version not in (root / "manual_bp" / "__init__.py").read_text()
    assert f"## [{version}]" in (root / "CHANGELOG.md").read_text()


# Every command that needs an extra, with small arguments, and the extra.
NEEDS = [
    (["demo", "--epochs", "1", "--samples", "8"], "jax", "oracle"),
    (["compare"], "jax", "oracle"),
    (["check", "json:dumps", "--layers", "2,1"], "jax", "oracle"),
    (["check", "json:dumps", "--layer", "relu"], "jax", "oracle"),
    (["check", "json:dumps", "--layers", "2,1"], "cloudpickle", "oracle"),
    (["train", "--epochs", "1"], "jax", "oracle"),
    (["train", "--epochs", "1"], "matplotlib", "plots"),
    (["audit", "--depths", "1", "--widths", "2"], "matplotlib", "plots"),
    (["campaign", "--examples", "1"], "distributed", "campaign"),
    (["campaign", "--examples", "1"], "jax", "campaign"),
]


@pytest.mark.parametrize(("argv", "module", "extra"), NEEDS)
def test_a_missing_extra_is_one_line_naming_its_install(argv, module, extra, tmp_path):
    """In a fresh interpreter where ``module`` cannot be imported: exit 2, one line."""
    code = (
        "import sys; sys.modules[sys.argv[1]] = None; from manual_bp.cli import main; "
        "sys.exit(main(sys.argv[2:]))"
    )
    done = subprocess.run([sys.executable, "-c", code, module, *argv], capture_output=True,
                          text=True, cwd=tmp_path, timeout=120)  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"needs {module}" in lines[0] and f"pip install 'manual-bp[{extra}]'" in lines[0]
