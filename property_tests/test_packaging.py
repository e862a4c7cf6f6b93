"""The product never imports jax; the demo runs."""

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

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


ROOT = Path(__file__).resolve().parent.parent


def _installed_name(init: Path, package_dir: dict[str, str]) -> str:
    """The import name of the package whose ``__init__.py`` is ``init``."""
    parts = init.parent.relative_to(ROOT).parts
    for name, folder in package_dir.items():
        if parts[: len(Path(folder).parts)] == Path(folder).parts:
            return ".".join((name, *parts[len(Path(folder).parts) :]))
    return ".".join(parts)


def test_a_wheel_lists_every_package_and_subpackage():
    """Only editable installs see packages that pyproject.toml does not list."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    package_dir = config["package-dir"]

    def packages(*folders: str) -> set[str]:
        return {
            _installed_name(init, package_dir)
            for folder in folders
            for init in (ROOT / folder).rglob("__init__.py")
        }

    assert set(config["packages"]) == packages("manual_bp", "reference")
    # Tests and benchmarks stay out of the wheel: nothing in the product imports them.
    assert packages("property_tests", "benchmarks") & set(config["packages"]) == set()


@pytest.mark.deep  # builds the wheel
def test_the_wheel_claims_no_generic_import_name_and_ships_its_licence(tmp_path):
    """The oracle side's folder is ``reference/``; installed, it is ``manual_bp_reference``
    (another distribution on the package index installs a top-level ``reference``)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("manual_bp-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"manual_bp", "manual_bp_reference"}
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert "manual_bp_reference/py.typed" in names


def test_nothing_imports_the_folder_name():
    """``reference`` is a folder, not an import name: code and docs say
    ``manual_bp_reference`` (from a checkout's root, importing the folder's name
    would load a second copy of the package).  benchmarks/RESULTS.md is a log of
    past runs and keeps the names of its day."""
    pattern = re.compile(r"(\bfrom|\bimport)\s+reference\b|[\"'`]reference\.[a-z]")
    offending = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("manual_bp", "reference", "property_tests", "benchmarks", "docs", "tools")
        for path in sorted((ROOT / folder).rglob("*"))
        if path.suffix in (".py", ".md")
        and "typecheck" not in path.parts
        and path.name != "RESULTS.md"
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if pattern.search(line)
    ]
    offending += [
        f"README.md:{n}"
        for n, line in enumerate((ROOT / "README.md").read_text().splitlines(), start=1)
        if pattern.search(line)
    ]
    assert offending == []


def test_the_version_is_written_once_in_pyproject():
    import manual_bp

    root = ROOT
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
