"""Fast feedback: a check run again loads its compiled oracle, the cache lives
in the user's cache folder (never the working directory), it can be turned
off, two processes can share it, and the commands that need no oracle never
import jax.

Each test runs ``manual-bp check`` as a user does, in a fresh process whose
``--json`` reports its compiles (``jax_setup.compiles``)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.time_to_verdict import MY_NET

# The README's example, as the time-to-verdict benchmark checks it.
CHECK = [
    "check", "my_net.py:backprop", "--layers", "2,3,1", "--activations", "tanh,sigmoid",
    "--examples", "5", "--json",
]  # fmt: skip
MANUAL_BP = str(Path(sys.executable).with_name("manual-bp"))


@pytest.fixture
def folder(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "my_net.py").write_text(MY_NET)
    return work


def _environment(tmp_path: Path, cache: str | None) -> dict[str, str]:
    """The user's environment with its cache folder under ``tmp_path``."""
    env = {key: value for key, value in os.environ.items() if key != "MANUAL_BP_COMPILE_CACHE"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    if cache is not None:
        env["MANUAL_BP_COMPILE_CACHE"] = cache
    return env


def _start(folder: Path, env: dict[str, str], *arguments: str) -> subprocess.Popen:
    return subprocess.Popen(
        [MANUAL_BP, *(arguments or CHECK)], cwd=folder, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def _compiles(process: subprocess.Popen) -> dict[str, float]:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    report = json.loads(out)
    assert report["verdict"] == "pass"
    return report["compiles"]


def _entries(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.glob("*-cache")) if cache.is_dir() else []


def test_a_check_run_again_loads_its_oracle_from_the_user_cache_folder(folder, tmp_path):
    env = _environment(tmp_path, None)
    before = sorted(p.name for p in folder.iterdir())
    first = _compiles(_start(folder, env))
    assert first["compiled"] >= 1 and first["from_cache"] == 0
    # The platform's per-user cache folder ($XDG_CACHE_HOME on Linux), not the
    # working directory: the folder holds the user's file and nothing more.
    cache = tmp_path / "xdg" / "manual-bp" / "jax"
    assert _entries(cache)
    assert sorted(p.name for p in folder.iterdir() if p.name != "__pycache__") == before
    again = _compiles(_start(folder, env))
    assert again["compiled"] == 0 and again["from_cache"] == first["compiled"]


@pytest.mark.deep  # a real process
def test_the_cache_can_be_turned_off(folder, tmp_path):
    env = _environment(tmp_path, "off")
    counted = _compiles(_start(folder, env))
    assert counted["compiled"] >= 1 and counted["from_cache"] == 0
    assert not (tmp_path / "xdg" / "manual-bp" / "jax").exists()


@pytest.mark.deep  # a real process
def test_a_relative_cache_folder_is_refused_by_name(folder, tmp_path):
    process = _start(folder, _environment(tmp_path, "cache-here"))
    _, err = process.communicate(timeout=300)
    assert process.returncode != 0
    assert "MANUAL_BP_COMPILE_CACHE: expected an absolute path or 'off', got 'cache-here'" in err
    assert not (folder / "cache-here").exists()


@pytest.mark.deep  # three real processes
def test_two_checks_sharing_an_empty_cache_both_pass_and_fill_it_once(folder, tmp_path):
    cache = tmp_path / "shared"
    env = _environment(tmp_path, str(cache))
    together = [_start(folder, env), _start(folder, env)]
    counts = [_compiles(process) for process in together]
    assert all(count["compiled"] + count["from_cache"] >= 1 for count in counts)
    # jax writes each entry whole, under the cache's file lock: the next run
    # reads what the two wrote and compiles nothing.
    assert len(_entries(cache)) == max(count["compiled"] for count in counts)
    third = _compiles(_start(folder, env))
    assert third["compiled"] == 0 and third["from_cache"] >= 1


@pytest.mark.parametrize(
    "arguments",
    [
        ["--help"],
        ["check", "--help"],
        ["check", "x.py:f", "--layers", "2,3,1", "--activations", "tanh,bogus"],
        ["check", "my_net.py:backprop", "--layers", "2,3,1", "--examples", "-1"],
        ["check", "my_net.py:backprop", "--layers", "2,3,1", "--timeout", "0"],
        ["check", "layers.py:f", "--layer", "batchnorm", "--examples", "0"],
        ["compare", "--layers", "2,x,1"],
    ],
    ids=[
        "help",
        "check help",
        "bad activation",
        "bad examples",
        "bad timeout",
        "bad layer examples",
        "bad layers",
    ],
)
def test_help_and_argument_errors_never_import_jax(arguments, folder):
    code = (
        "import sys\n"
        "from manual_bp.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit:\n"
        "    pass\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib')]\n"
        "assert not loaded, loaded[:3]\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *arguments], cwd=folder, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_without_filelock_the_cache_is_off_and_says_so(tmp_path):
    """jax's cache is safe between processes only under filelock's lock."""
    code = (
        "import sys, warnings\n"
        "sys.modules['filelock'] = None\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    from manual_bp_reference import jax_setup\n"
        "assert jax_setup.COMPILE_CACHE is None, jax_setup.COMPILE_CACHE\n"
        "assert any('needs the filelock package' in str(w.message) for w in caught)\n"
    )
    env = _environment(tmp_path, None)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "xdg" / "manual-bp" / "jax").exists()
