"""``check_layer`` on the shaped families (issue 27): students' correct code in
several real styles passes with zero glue, each catalogued bug is caught and
named, and the padded oracles equal ``jax.vjp`` of the definition at the
case's own shapes.

The students' code is ``benchmarks/layer_styles`` (cs231n's exact
signatures, written as students write them); the quick suite checks every
style and bug on few examples, the deep suite on the default 100.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.layer_styles import convolution, pooling, recurrent, spatial_normalization, temporal
from manual_bp_reference.layer_check import LayerMismatch, check_layer
from manual_bp_reference.layer_check.cases import LayerCase, layer_cases, probe_case
from manual_bp_reference.layer_check.oracle import _exact_oracle, layer_oracle
from manual_bp_reference.layer_kinds import LAYER_KINDS
from manual_bp_reference.settings import Settings
from property_tests import layer_regressions

MODULES = (convolution, pooling, spatial_normalization, recurrent, temporal)
SHAPED = sorted(name for name, kind in LAYER_KINDS.items() if kind.shapes is not None)
QUICK = Settings(max_examples=12, isolate=False)
# A bug is found in a few examples; shrinking it (the deep suite's) costs more.
BUGGY = Settings(max_examples=30, isolate=False, shrink=False)
DEEP = Settings(isolate=False)

# Each student bug (benchmarks/layer_styles' key) and the catalogue's name for it.
EXPECTED = {
    ("conv", "flipped_kernel"): "flipped kernel",
    ("conv", "padding_cropped_wrong_side"): "padding cropped from one side",
    ("conv", "stride_ignored"): "stride ignored in the backward",
    ("conv", "db_averaged_over_n"): "db averaged over the batch",
    ("conv", "dw_first_sample_only"): "dw from the first sample only",
    ("max_pool", "whole_window"): "gradient to the whole window",
    ("max_pool", "assigned_not_added"): "gradient assigned, not added",
    ("max_pool", "stride_ignored"): "stride ignored in the backward",
    ("max_pool", "unravelled_by_height"): "argmax unravelled with the window's height",
    ("avg_pool", "not_divided_by_window_size"): "dout not divided by the window size",
    ("spatial_batchnorm", "per_position"): "statistics per position",
    ("spatial_batchnorm", "no_mean_term"): "the mean and variance terms dropped",
    ("spatial_batchnorm", "ddof1"): "the variance with ddof=1",
    ("spatial_groupnorm", "instance_norm"): "normalized per channel",
    ("spatial_groupnorm", "over_groups"): "normalized over the groups axis",
    ("spatial_groupnorm", "dgamma_per_sample"): "dgamma kept per sample",
    ("spatial_groupnorm", "no_mean_term"): "the mean and variance terms dropped",
    ("spatial_groupnorm", "ddof1"): "the variance with ddof=1",
    ("rnn_step", "tanh_prime_linear"): "tanh' as 1 - tanh",
    ("rnn", "no_carried_dh"): "dh from the next step not added",
    ("rnn", "overwritten_dW"): "weight gradients overwritten",
    ("rnn", "tanh_prime_linear"): "tanh' as 1 - tanh",
    ("lstm_step", "gate_order_ifgo"): "gate order swapped",
    ("lstm_step", "dc_not_carried"): "the cell-state gradient not carried",
    ("lstm_step", "tanh_prime_linear"): "tanh' as 1 - tanh",
    ("lstm", "no_carried_dh"): "dh from the next step not added",
    ("lstm", "overwritten_dW"): "weight gradients overwritten",
    ("lstm", "gate_order_ifgo"): "gate order swapped",
    ("lstm", "dc_not_carried"): "the cell-state gradient not carried",
    ("lstm", "tanh_prime_linear"): "tanh' as 1 - tanh",
    ("word_embedding", "fancy_index_assignment"): "repeated words dropped",
    ("temporal_affine", "db_summed_over_n_only"): "db summed over the batch only",
    ("temporal_affine", "dw_without_sum_over_t"): "dw from one step",
    ("temporal_softmax_loss", "mask_ignored_in_dx"): "mask ignored in dx",
    ("temporal_softmax_loss", "mask_ignored_in_loss"): "mask ignored in the loss",
    ("temporal_softmax_loss", "loss_divided_by_nt"): "loss divided by N T",
    ("temporal_softmax_loss", "dx_not_divided_by_n"): "dx not divided by N",
}


# Correct styles whose numerics overflow at the regression cases' large values.
OVERFLOWING = {"exp_tanh"}


def _pair(entry) -> tuple:
    """``(backward, forward)`` of a style: a loss head is one function."""
    return (entry, None) if callable(entry) else (entry[1], entry[0])


STYLES = [
    pytest.param(layer, entry, id=f"{layer}-{style}")
    for module in MODULES
    for layer, styles in module.STYLES.items()
    for style, entry in styles.items()
]
BUGS = [
    pytest.param(layer, bug, entry, id=f"{layer}-{bug}")
    for module in MODULES
    for layer, bugs in module.BUGS.items()
    for bug, entry in bugs.items()
]


def test_every_shaped_family_has_two_styles_and_a_catalogue():
    styled = {layer: len(s) for m in MODULES for layer, s in m.STYLES.items()}
    assert set(styled) == set(SHAPED)
    families = {LAYER_KINDS[layer].family for layer in SHAPED}
    for family in families:  # two real styles per family, at least
        assert max(styled[layer] for layer in SHAPED if LAYER_KINDS[layer].family == family) >= 2
    assert {layer for layer, _ in EXPECTED} == set(SHAPED)  # every kind has a named bug
    assert {(layer, bug) for m in MODULES for layer, b in m.BUGS.items() for bug in b} == set(
        EXPECTED
    )


@pytest.mark.parametrize(("layer", "entry"), STYLES)
def test_students_correct_code_passes_with_zero_glue(layer, entry):
    backward, forward = _pair(entry)
    report = check_layer(backward, layer, forward=forward, settings=QUICK)
    assert report.examples == QUICK.max_examples


@pytest.mark.deep
@pytest.mark.parametrize(("layer", "entry"), STYLES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_students_correct_code_passes_deep(layer, entry, dtype):
    backward, forward = _pair(entry)
    chosen = Settings(isolate=False, dtype=dtype)
    if _name(entry) in OVERFLOWING and dtype == "float32":  # e^a overflows from |a| > 88
        with pytest.raises(LayerMismatch) as raised:
            check_layer(backward, layer, forward=forward, settings=chosen)
        assert raised.value.verdict == "correct maths, unstable numerics"
        return
    report = check_layer(backward, layer, forward=forward, settings=chosen)
    assert report.examples == 100


def _name(entry) -> str:
    """The style's name in ``benchmarks/layer_styles``."""
    return next(name for m in MODULES for styles in m.STYLES.values()
                for name, e in styles.items() if e is entry)  # fmt: skip


@pytest.mark.parametrize(("layer", "bug", "entry"), BUGS)
def test_each_catalogued_bug_is_caught_and_named(layer, bug, entry):
    _caught_and_named(layer, bug, entry, BUGGY)


@pytest.mark.deep
@pytest.mark.parametrize(("layer", "bug", "entry"), BUGS)
def test_each_catalogued_bug_is_caught_and_named_shrunk(layer, bug, entry):
    _caught_and_named(layer, bug, entry, DEEP)


def _caught_and_named(layer, bug, entry, chosen: Settings) -> None:
    backward, forward = _pair(entry)
    with pytest.raises(LayerMismatch) as raised:
        check_layer(backward, layer, forward=forward, settings=chosen)
    mismatch = raised.value
    assert mismatch.verdict == "wrong"
    named = [line for line in mismatch.diagnosis if line.startswith("likely: ")]
    assert [line.split(":")[1].strip() for line in named] == [EXPECTED[layer, bug]], named


def test_float32_code_is_judged_in_float32():
    backward, forward = _pair(convolution.STYLES["conv"]["im2col"])
    chosen = Settings(max_examples=10, isolate=False, dtype="float32")
    report = check_layer(backward, "conv", forward=forward, settings=chosen)
    assert report.examples == 10


def test_isolated_students_code_passes():
    """The default: the student's functions in a child process, the cache kept there."""
    backward, forward = _pair(recurrent.STYLES["lstm"]["cs231n"])
    assert check_layer(backward, "lstm", forward=forward,
                       settings=Settings(max_examples=5)).examples == 5  # fmt: skip


@pytest.mark.parametrize("layer", SHAPED)
def test_the_padded_oracle_equals_the_definitions_vjp_on_the_probe(layer):
    _padded_equals_exact(probe_case(layer, "rows", "float64"))


@pytest.mark.deep
@pytest.mark.parametrize("layer", SHAPED)
def test_the_padded_oracle_equals_the_definitions_vjp(layer):
    @settings(max_examples=30, deadline=None)
    @given(st.data())
    def law(data):
        _padded_equals_exact(data.draw(layer_cases(layer)))

    law()


def _padded_equals_exact(case: LayerCase) -> None:
    """The oracle ``check_layer`` uses (padded, or the kind's own) against ``jax.vjp``
    of the definition compiled at the case's shapes: within the kind's tolerance
    (both sum the same products, in orders of their own)."""
    kind = LAYER_KINDS[case.layer]
    inputs, dout = case.ours()
    douts = dout if isinstance(dout, tuple) else () if dout is None else (dout,)
    if kind.fixed is not None:
        inputs = {**inputs, **kind.fixed(inputs, {}, "rows", None)[0]}
    used = layer_oracle(case.layer, inputs, dout)
    exact = _exact_oracle(kind, inputs, douts)
    tolerance = kind.tolerance(inputs, dout, case.dtype)
    assert set(used) == set(exact)
    for name in exact:
        assert used[name].shape == exact[name].shape, name
        assert np.all(np.abs(used[name] - exact[name]) <= tolerance[name]), name


def test_shaped_kinds_take_cs231n_layout_only():
    backward, forward = _pair(convolution.STYLES["conv"]["naive"])
    with pytest.raises(ValueError, match="layout: 'conv' is checked in cs231n's layout"):
        check_layer(backward, "conv", forward=forward, layout="columns")
    with pytest.raises(
        ValueError, match=r"forward: 'conv' needs your forward \(x, w, b, conv_param\)"
    ):
        check_layer(backward, "conv")
    with pytest.raises(ValueError, match=r"loss\(x, y, mask\)"):
        check_layer(temporal.STYLES["temporal_softmax_loss"]["cs231n"], "temporal_softmax_loss",
                    forward=forward)  # fmt: skip


def test_a_forward_returning_too_few_values_is_named():
    def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):  # forgets next_c
        next_h, _, cache = recurrent.lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b)
        return next_h, cache

    backward = recurrent.STYLES["lstm_step"]["cs231n"][1]
    with pytest.raises(LayerMismatch) as raised:
        check_layer(backward, "lstm_step", forward=lstm_step_forward, settings=QUICK)
    assert "expected (next_h, next_c, cache)" in str(raised.value)


def test_a_shaped_case_repr_is_pasteable():
    case = probe_case("lstm_step", "rows", "float64")
    again = eval(repr(case), {"LayerCase": LayerCase, "np": np})  # our own repr
    assert again.param == case.param
    for name, value in case.inputs.items():
        np.testing.assert_array_equal(again.inputs[name], value)
    for mine, theirs in zip(case.douts, again.douts, strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_max_pool_ties_are_said_to_be_undecided():
    backward, forward = _pair(pooling.STYLES["max_pool"]["naive"])
    report = check_layer(backward, "max_pool", forward=forward, settings=QUICK)
    assert any("tied maxima" in note for note in report.notes)


def test_the_html_report_of_a_shaped_mismatch_renders():
    backward, forward = _pair(convolution.BUGS["conv"]["flipped_kernel"])
    with pytest.raises(LayerMismatch) as raised:
        check_layer(backward, "conv", forward=forward, settings=QUICK)
    page = raised.value._repr_html_()
    assert "flipped kernel" in page and "dx" in page


def test_the_check_commands_help_names_every_layer_kind():
    import subprocess
    import sys

    shown = subprocess.run(
        [sys.executable, "-m", "manual_bp", "check", "--help"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    flat = " ".join(shown.split())
    for name in LAYER_KINDS:
        assert name in flat, name


@pytest.mark.parametrize("index", range(len(layer_regressions.CASES)))
def test_past_false_alarms_pass(index):
    """Each case once failed correct code (``layer_regressions.REASONS``); every
    correct style of its kind passes it now."""
    from manual_bp_reference.layer_check import compare_layer, run_user

    case = layer_regressions.CASES[index]
    styles = next(m.STYLES[case.layer] for m in MODULES if case.layer in m.STYLES)
    for name, entry in styles.items():
        if name in OVERFLOWING:  # np.exp(a) of a near 1e6: unstable numerics, its own verdict
            continue
        comparison = compare_layer(case, *run_user(*_pair(entry), case))
        assert comparison.ok, (layer_regressions.REASONS[index], comparison.report())


def test_right_values_in_the_wrong_shape_are_named_so():
    """A student's keepdims: dgamma (1, C) where (C,) is expected (the values right)."""
    forward, backward = spatial_normalization.STYLES["spatial_batchnorm"]["axes"]

    def kept_dims(dout, cache):
        dx, dgamma, dbeta = backward(dout, cache)
        return dx, dgamma.reshape(1, -1), dbeta.reshape(1, -1)

    with pytest.raises(LayerMismatch) as raised:
        check_layer(kept_dims, "spatial_batchnorm", forward=forward, settings=QUICK)
    (line,) = raised.value.diagnosis
    assert line.startswith("likely: the right values in the wrong shape")
    assert "dgamma is (1, " in line and "dbeta is (1, " in line
