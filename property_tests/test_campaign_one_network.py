"""``manual_bp_reference.campaign`` on one network: a student's ``backprop(params, X, Y)``
in the conventions ``manual-bp check`` takes, in the three styles real code
is written in (course, cs231n, Nielsen), run chunk by chunk without Dask.

The Dask engine, resuming and the shared database are tested in
``test_campaign.py``; here the target's calling convention, the drawing of
one network, and the replay of a student's failure by the property.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import Phase, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from manual_bp import Net
from manual_bp.cli import main
from manual_bp_reference.campaign import (
    Config,
    campaign_property,
    database_key,
    merge,
    paths,
    read_manifest,
    run_chunk,
    run_example,
    save_failures,
    target_digest,
)
from manual_bp_reference.conventions import Conventions
from manual_bp_reference.draws import Limits
from property_tests.campaign_targets import STUDENTS

NETWORKS = {
    "course": (Net.of([3, 4, 1], ["tanh", "sigmoid"], "binary_cross_entropy"), None),
    "cs231n": (
        Net.of([4, 6, 3], ["relu", "softmax"], "cross_entropy"),
        Conventions(layout="rows", names="W1/b1", targets="labels"),
    ),
    "nielsen": (
        Net.of([2, 3, 1], ["sigmoid", "sigmoid"], "mse"),
        Conventions(container="list", reduction="sum"),
    ),
}
SMALL = Limits(batch=8)


@pytest.fixture(scope="module")
def students(tmp_path_factory):
    path = tmp_path_factory.mktemp("students") / "students.py"
    path.write_text(STUDENTS)
    return path


def totals(config: Config) -> dict:
    return merge(run_chunk(config, chunk) for chunk in range(config.chunks))


@pytest.mark.parametrize("style", sorted(NETWORKS))
def test_a_correct_student_function_passes_every_example(students, style):
    network, conventions = NETWORKS[style]
    config = Config(12, 0, 6, f"{students}:{style}", SMALL, network, conventions)
    result = totals(config)
    assert result["failures"] == 0, result["worst"][:3]
    assert result["examples_by_dtype"] == {"float64": 6, "float32": 6}
    assert all(entry["network"].startswith(f"layer_sizes={list(network.layer_sizes)}")
               for entry in result["worst"])  # fmt: skip


def test_a_student_bug_fails_and_the_property_replays_it_from_the_database(
    students, tmp_path, capsys
):
    network, _ = NETWORKS["course"]
    target = f"{students}:course_sum_bias"
    config = Config(8, 3, 8, target, SMALL, network, dtypes=("float64",))
    result = totals(config)
    failing = result["failing_indices"]
    # m = 1 hides the bug (the sum of one sample is its mean); every other batch shows it.
    assert failing and result["examples_by_dtype"] == {"float64": 8, "float32": 0}
    assert max(entry["ratio"] for entry in result["worst"]) > 1e3
    assert {entry["key"] for entry in result["worst"] if entry["ratio"] > 1} == {"B1"}
    same = {"target": target, "limits": SMALL, "network": network, "dtypes": ("float64",)}
    example, outcome = run_example(3, failing[0], **same)
    assert not outcome.ok and outcome.worst[1] == "B1" and example.arch.m > 1
    assert example.arch == config.draw(failing[0]).arch  # the very example that failed

    database = DirectoryBasedExampleDatabase(tmp_path / "db")
    key = database_key(**same)
    save_failures(database, key, 3, failing)
    prop = campaign_property(**same)
    replay = settings(database=database, derandomize=False, phases=[Phase.reuse])(prop)
    with pytest.raises(AssertionError, match=r"seed 3, example (\d+)") as caught:
        replay()
    replayed = int(re.search(r"seed 3, example (\d+)", str(caught.value)).group(1))
    assert replayed in failing
    # Another network is another property: its key differs, so nothing is replayed.
    other = Net.of([3, 5, 1], ["tanh", "sigmoid"], "binary_cross_entropy")
    assert database_key(**{**same, "network": other}) != key

    # --replay rebuilds example i from the campaign's own record (here, its manifest).
    out = tmp_path / "bug"
    paths(out)["manifest"].write_text(json.dumps({"config": config.as_dict(), "rules": 2}))
    assert main(["campaign", "--out", str(out), "--replay", str(failing[0])]) == 1
    printed = capsys.readouterr().out
    assert f"seed 3, example {failing[0]}: float64, layer_sizes=[3, 4, 1]" in printed
    assert "FAIL: worst err/tol" in printed and "in B1" in printed
    passing = min(set(range(8)) - set(failing))
    assert main(["campaign", "--out", str(out), "--replay", str(passing)]) == 0
    assert main(["campaign", "--out", str(out), "--replay", "0", "--examples", "5"]) == 2
    assert "error: --examples: not with --replay" in capsys.readouterr().err
    assert main(["campaign", "--out", str(out), "--replay", "8"]) == 2  # 8 examples: 0..7
    assert "error: --replay: expected an int in 0..7" in capsys.readouterr().err


def test_an_edited_file_is_loaded_again_and_a_relative_path_made_absolute(
    tmp_path, monkeypatch, capsys
):
    """A worker keeps a loaded target for its life, unless the file changes; a
    campaign's manifest records the file's digest, so that it is not resumed on
    other code, and a replay says that it checks today's code."""
    monkeypatch.chdir(tmp_path)
    network, _ = NETWORKS["course"]
    Path("mine.py").write_text(STUDENTS)
    config = Config(4, 0, 4, "mine.py:course", SMALL, network, dtypes=("float64",))
    assert config.target == f"{tmp_path / 'mine.py'}:course"
    assert run_chunk(config, 0)["failures"] == []
    header = {"config": config.as_dict(), "rules": 2, "target_digest": target_digest(config.target)}
    paths(tmp_path / "run")["manifest"].write_text(json.dumps(header) + "\n")
    assert read_manifest(paths(tmp_path / "run")["manifest"], config) == {}
    Path("mine.py").write_text(STUDENTS.replace("dZ2 = A2 - Y", "dZ2 = 2 * (A2 - Y)"))
    assert len(run_chunk(config, 0)["failures"]) == 4
    with pytest.raises(ValueError, match=r"target file .* changed since the campaign began"):
        read_manifest(paths(tmp_path / "run")["manifest"], config)
    assert main(["campaign", "--out", str(tmp_path / "run"), "--replay", "1"]) == 1
    assert "note: " in capsys.readouterr().out


def test_a_target_that_cannot_take_its_forms_arguments_is_refused_up_front(
    students, tmp_path, capsys
):
    """A student's backprop(params, X, Y) without its network, and a five-argument
    function with one: exit 2 before any example, naming --target."""
    out = ["--out", str(tmp_path / "x")]
    assert main(["campaign", "--target", f"{students}:course", *out]) == 2
    err = capsys.readouterr().err
    assert (
        "error: --target: course(params, X, Y) cannot be called as backprop(params, X, Y, " in err
    )
    assert "--layers" in err
    five = "property_tests.campaign_targets:wrong_bias"
    assert main(["campaign", "--target", five, "--layers", "2,3,1", *out]) == 2
    assert "cannot be called as backprop(params, X, Y);" in capsys.readouterr().err
    assert main(["campaign", "--resume", *out]) == 2  # nothing there to resume
    assert "error: --resume: no campaign at" in capsys.readouterr().err
    assert not (tmp_path / "x.manifest.jsonl").exists()


def test_hard_targets_and_one_dtype_are_drawn_as_asked(students):
    network, conventions = NETWORKS["cs231n"]
    config = Config(6, 1, 6, f"{students}:cs231n", SMALL, network, conventions, ("float32",))
    for index in range(6):
        example = config.draw(index)
        assert example.dtype == "float32" and example.arch.sizes == (4, 6, 3)
        assert set(example.Y.sum(axis=0).tolist()) == {1.0}  # one-hot columns
        assert set(example.Y.ravel().tolist()) <= {0.0, 1.0}


def test_the_config_survives_the_manifest_and_refuses_conventions_without_a_network(students):
    network, conventions = NETWORKS["cs231n"]
    config = Config(6, 1, 6, f"{students}:cs231n", SMALL, network, conventions, ("float32",))
    assert Config.from_dict(json.loads(json.dumps(config.as_dict()))) == config
    # The net in the digest (the database key) reads as 0.1's draws.Network did.
    assert "Network(layer_sizes=(4, 6, 3), activations=('relu', 'softmax'), loss=" in config.digest
    with pytest.raises(ValueError, match="conventions: a user's target on one network"):
        Config(6, target=f"{students}:cs231n", conventions=conventions)
    with pytest.raises(ValueError, match="conventions: a user's target on one network"):
        Config(6, network=network, conventions=conventions)  # manual_bp has ours
    with pytest.raises(ValueError, match="targets: 'labels' needs a cross-entropy loss"):
        Config(6, target=f"{students}:course", network=NETWORKS["nielsen"][0],
               conventions=Conventions(targets="labels"))  # fmt: skip
    with pytest.raises(ValueError, match="dtypes"):
        Config(6, dtypes=("float16",))
    # Our conventions given explicitly are the same campaign (and resume it).
    explicit = Config(6, 1, 6, f"{students}:course", SMALL, NETWORKS["course"][0], Conventions())
    assert explicit == Config(6, 1, 6, f"{students}:course", SMALL, NETWORKS["course"][0])
    assert json.loads(json.dumps(Config(6, seed=np.int64(7)).as_dict()))["seed"] == 7


def test_a_manifest_judged_by_older_rules_is_not_resumed_for_a_users_target(students, tmp_path):
    """Before version 2 a user's target was judged without moving kinked units off
    the kink; one total must not mix the two."""
    user = Config(6, 1, 3, f"{students}:course", SMALL, NETWORKS["course"][0])
    own = Config(6, 1, 3, limits=SMALL)
    for config, refused in ((user, True), (own, False)):
        manifest = tmp_path / f"{refused}.manifest.jsonl"
        manifest.write_text(json.dumps({"config": config.as_dict()}) + "\n")  # no "rules"
        if refused:
            with pytest.raises(ValueError, match="rules of version 1"):
                read_manifest(manifest, config)
        else:
            assert read_manifest(manifest, config) == {}
    with pytest.raises(ValueError, match="layer_sizes"):
        Net.of([3, 0, 1], ["tanh", "sigmoid"], "binary_cross_entropy")
    with pytest.raises(TypeError, match=r"network: expected a manual_bp\.Net, got tuple"):
        Config(6, network=((3, 4, 1), ("tanh", "sigmoid"), "binary_cross_entropy"))
    with pytest.raises(ValueError, match="network: expected a plain Net"):
        Config(6, network=Net.of([3, 4, 4, 1], dropout=0.5))


LABELS = ["--target", "json:dumps", "--layers", "2,1"]  # any callable loads


@pytest.mark.parametrize(
    ("arguments", "flag"),
    [
        (["--layout", "rows"], "--layout"),  # conventions without a network
        (["--layers", "2,3,1", "--names", "W1/b1"], "--names"),  # manual_bp has ours
        ([*LABELS, "--loss", "mse", "--targets", "labels"], "--targets"),
        (["--layers", "2,0,1"], "--layers"),
        (["--layers", "2,3,1", "--max-width", "4"], "--max-width"),  # refused, not ignored
        (["--target", "no_such_file.py:back_prop", "--layers", "2,1"], "--target: no file"),
        (["--activations", "tanh,nope"], "--activations"),
        (["--target", "missing.py:backprop", "--layers", "2,1"], "--target"),
    ],
)
def test_bad_one_network_arguments_exit_2_naming_the_flag(arguments, flag, tmp_path, capsys):
    assert main(["campaign", "--out", str(tmp_path / "x"), *arguments]) == 2
    err = capsys.readouterr().err
    assert f"error: {flag}" in err
    assert "no_such_file" not in err or "no_such_file.py" in err  # names kept as written
    assert not (tmp_path / "x.manifest.jsonl").exists()
