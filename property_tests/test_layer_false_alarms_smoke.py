"""A smoke run of ``benchmarks/layer_false_alarms.py`` on the shaped kinds (issue 27):
every correct implementation it measures runs through the check without an
alarm on a few cases, a named bug through the same loop raises alarms (the
count can fail), and a bad flag exits 2 naming it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks import layer_false_alarms as bench
from benchmarks.layer_styles import convolution as conv_styles
from benchmarks.layer_styles import recurrent as recurrent_styles
from benchmarks.layer_styles import temporal as temporal_styles

SHAPED = (
    "conv", "max_pool", "avg_pool", "spatial_batchnorm", "spatial_groupnorm", "rnn_step",
    "rnn", "lstm_step", "lstm", "word_embedding", "temporal_affine", "temporal_softmax_loss",
)  # fmt: skip


def test_every_shaped_kind_has_students_styles_and_manual_bp_s() -> None:
    labels = {style[0] for style in bench.shaped_styles()}
    assert {style[1] for style in bench.shaped_styles()} == set(SHAPED)
    assert all(f"{layer} manual_bp" in labels for layer in SHAPED)
    assert "conv im2col" in labels and "lstm preactivation" in labels


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layer", SHAPED)
def test_correct_implementations_raise_no_alarm(layer: str, dtype: str) -> None:
    for style in bench.shaped_styles():
        if style[1] == layer:
            calls, alarms, worst, report = bench.run(3, dtype, style)
            assert (calls, alarms) == (3, 0), report
            assert worst <= 1


@pytest.mark.parametrize(
    ("layer", "pair"),
    [
        ("conv", conv_styles.BUGS["conv"]["stride_ignored"]),
        ("lstm", recurrent_styles.BUGS["lstm"]["gate_order_ifgo"]),
        ("temporal_softmax_loss", temporal_styles.temporal_softmax_loss__mask_ignored_in_dx),
    ],
)
def test_a_bug_counts_as_alarms(layer: str, pair: Any, tmp_path: Path) -> None:
    forward, backward = (None, pair) if callable(pair) else pair[:2]  # a loss: one function
    failures = tmp_path / "failures.txt"
    style = (f"{layer} bug", layer, "rows", backward, forward)
    calls, alarms, worst, _ = bench.run(30, "float64", style, failures=str(failures))
    assert calls == 30 and alarms > 0 and worst > 1
    assert "LayerCase(" in failures.read_text()  # the pasteable case is saved


def test_code_that_raises_is_an_alarm() -> None:
    def broken(x, y, mask):
        raise RuntimeError("boom")

    style = ("broken", "temporal_softmax_loss", "rows", broken, None)
    calls, alarms, worst, report = bench.run(2, "float32", style)
    assert (calls, alarms, worst) == (2, 2, float("inf"))
    assert "raised RuntimeError: boom" in report


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--layers", "convolution"], "--layers"),
        (["--families", "conv"], "--families"),
        (["--dtypes", "float16"], "--dtypes"),
        (["--bound", "-1"], "--bound"),
        (["--family-calls", "0"], "--family-calls"),
    ],
)
def test_a_bad_flag_exits_2_naming_it(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        bench.main(argv)
    assert stop.value.code == 2
    assert flag in capsys.readouterr().err
