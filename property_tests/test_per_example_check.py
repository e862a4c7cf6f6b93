"""``check_per_example``: correct per-example gradients and norms pass, every
catalogued bug is caught and named, bad arguments are refused.

The correct implementations are ``manual_bp.per_example``'s (one backward
pass, unaveraged; Goodfellow's norms) and a researcher's loop over the
samples calling ``network.backward`` on each column (a batch of one): the
two ways anyone computes them.  The buggy ones are each bug as people write
it (``BUGGY``), not the catalogue's formula: the diagnosis must recognise
the code's output.

The oracle itself (``per_example_oracle``) is held to two laws on drawn nets
of every activation and loss (one bucket compile): the mean of its ``g_i``
is ``oracle_gradients``' batch gradient (plus the decay), and its network and
bucket compilations agree, each within the tolerances.

Speed: the checks run in this process (``isolate=False``; one isolated run
of a ``FILE.py:NAME``), with few examples, on a short list of nets (``NETS``:
every activation and every loss with its canonical output among them), so
each net's oracle compiles once.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from manual_bp import network
from manual_bp.net import Net
from manual_bp.per_example import per_example_gradients, per_example_norms
from manual_bp_reference.cases import Case
from manual_bp_reference.oracle import oracle_gradients
from manual_bp_reference.per_example_check import (
    BUG_NAMES,
    BUGS,
    NORMS,
    PerExampleMismatch,
    PerExampleReport,
    check_per_example,
    compare_per_example,
    diagnose_per_example,
    per_example_oracle,
)
from manual_bp_reference.settings import Settings
from manual_bp_reference.strategies import networks
from property_tests.budget import examples

# Every activation and every loss with its canonical output; decay in some.
NETS = {
    "tanh-softmax": Net.of([3, 4, 2], ["tanh", "softmax"], "cross_entropy", l2=0.1),
    "relu-sigmoid": Net.of([2, 3, 3, 1], ["relu", "sigmoid", "sigmoid"], "binary_cross_entropy"),
    "leaky-identity": Net.of([4, 2, 3], ["leaky_relu", "identity"], "mse", l2=0.5),
    "rest": Net.of([2, 3, 2, 2], ["softplus", "elu", "identity"], "mse", l2=0.01),
}
# The activations NETS leave out, in one more net.
SETTINGS = Settings(max_examples=12, isolate=False, max_batch=6)


def _rest_of_the_activations() -> Net:
    from manual_bp.activations import ACTIVATIONS

    used = {name for net in NETS.values() for name in net.activations}
    missing = sorted(set(ACTIVATIONS) - used - {"softmax"})
    return Net.of([2, *[3] * len(missing), 2], [*missing, "softmax"], "cross_entropy", l2=0.2)


NETS["others"] = _rest_of_the_activations()


def product_gradients(net: Net):
    def gradients(params, X, Y):
        return per_example_gradients(params, X, Y, net)

    return gradients


def product_norms(net: Net):
    def norms(params, X, Y):
        return per_example_norms(params, X, Y, net)

    return norms


def looped_gradients(net: Net):
    """A researcher's per-example gradients: ``network.backward`` on each column."""

    def gradients(params, X, Y):
        per_sample = []
        for i in range(X.shape[1]):
            _, cache = network.forward(params, X[:, i : i + 1], net)
            per_sample.append(network.backward(cache, Y[:, i : i + 1], net))
        return {key: np.stack([g[key] for g in per_sample]) for key in params}

    return gradients


def looped_norms(net: Net):
    gradients = looped_gradients(net)

    def norms(params, X, Y):
        g = gradients(params, X, Y)
        flat = np.concatenate([v.reshape(X.shape[1], -1) for v in g.values()], axis=1)
        return np.linalg.norm(flat, axis=1)

    return norms


@pytest.mark.parametrize("name", sorted(NETS))
def test_the_products_functions_and_a_loop_over_samples_pass(name):
    net = NETS[name]
    for make, quantity in [(product_gradients, "gradients"), (product_norms, "norms"),
                           (looped_gradients, "gradients"), (looped_norms, "norms")]:  # fmt: skip
        report = check_per_example(make(net), net, quantity=quantity, settings=SETTINGS)
        assert isinstance(report, PerExampleReport)
        assert report.examples == SETTINGS.max_examples and report.quantity == quantity
        assert max(report.worst.values()) <= 1.0
        assert "PASS (per-example" in str(report)


def test_float32_cases_keep_their_dtype_and_pass():
    net = NETS["tanh-softmax"]
    seen = []

    def gradients(params, X, Y):
        seen.append((params["W1"].dtype, X.dtype))
        out = per_example_gradients(params, X, Y, net)
        assert all(value.dtype == np.float32 for value in out.values())
        return out

    settings = Settings(max_examples=8, isolate=False, dtype="float32", max_batch=5)
    check_per_example(gradients, net, settings=settings)
    check_per_example(product_norms(net), net, quantity="norms", settings=settings)
    assert set(seen) == {(np.dtype(np.float32), np.dtype(np.float32))}


def test_float32_values_for_a_float64_net_fail_with_a_note():
    net = NETS["tanh-softmax"]

    def rounded(params, X, Y):
        return {
            k: v.astype(np.float32) for k, v in per_example_gradients(params, X, Y, net).items()
        }

    with pytest.raises(PerExampleMismatch) as caught:
        check_per_example(rounded, net, settings=SETTINGS)
    assert "dtype float32 returned for a float64 net" in str(caught.value)


# --- the bugs, as people write them ----------------------------------------------------------


def _bug(name: str, net: Net):
    """The function with bug ``name``, for ``net``; its quantity."""
    l2 = net.l2

    def grads(params, X, Y, decay=l2):
        return per_example_gradients(params, X, Y, net.with_l2(decay))

    def batch(params, X, Y):
        _, cache = network.forward(params, X, net)
        g = network.backward(cache, Y, net)
        return {key: g[key] for key in params}

    def norm(g, keys=None):
        m = next(iter(g.values())).shape[0]
        keys = keys or list(g)
        return np.linalg.norm(np.concatenate([g[k].reshape(m, -1) for k in keys], 1), axis=1)

    bugs = {
        "per-example gradients divided by m": (
            lambda p, X, Y: {k: v / X.shape[1] for k, v in grads(p, X, Y).items()}, "gradients"),
        "the batch-mean gradient repeated": (
            lambda p, X, Y: {k: np.repeat(v[None], X.shape[1], 0)
                             for k, v in batch(p, X, Y).items()}, "gradients"),
        "the batch-sum gradient repeated": (
            lambda p, X, Y: {k: np.repeat(X.shape[1] * v[None], X.shape[1], 0)
                             for k, v in batch(p, X, Y).items()}, "gradients"),
        "the decay missing from each example": (
            lambda p, X, Y: grads(p, X, Y, decay=0.0), "gradients"),
        "the decay added m times": (
            lambda p, X, Y: {k: v + (X.shape[1] * l2 * p[k] if k[0] == "W" else 0)
                             for k, v in grads(p, X, Y, decay=0.0).items()}, "gradients"),
        "the decay divided by m": (
            lambda p, X, Y: {k: v + (l2 / X.shape[1] * p[k] if k[0] == "W" else 0)
                             for k, v in grads(p, X, Y, decay=0.0).items()}, "gradients"),
        "the squared norm": (
            lambda p, X, Y: per_example_norms(p, X, Y, net, squared=True), "norms"),
        "norms squared twice": (
            lambda p, X, Y: np.sum(np.concatenate(
                [v.reshape(X.shape[1], -1) for v in grads(p, X, Y).values()], 1) ** 2, 1) ** 2,
            "norms"),
        "the bias gradients left out of the norm": (
            lambda p, X, Y: norm(grads(p, X, Y), [k for k in p if k[0] == "W"]), "norms"),
        "the per-layer norms summed": (
            lambda p, X, Y: sum(norm(grads(p, X, Y), [f"W{l}", f"B{l}"])
                                for l in range(1, net.depth + 1)), "norms"),
        "the per-parameter norms summed": (
            lambda p, X, Y: sum(norm(grads(p, X, Y), [k]) for k in p), "norms"),
    }  # fmt: skip
    assert set(bugs) == set(BUG_NAMES)
    return bugs[name]


@pytest.mark.parametrize("name", BUG_NAMES)
def test_every_catalogued_bug_is_caught_and_named(name):
    net = NETS["tanh-softmax"]  # l2 = 0.1: the decay's bugs show
    function, quantity = _bug(name, net)
    with pytest.raises(PerExampleMismatch) as caught:
        check_per_example(function, net, quantity=quantity, settings=SETTINGS)
    mismatch = caught.value
    assert mismatch.verdict == "wrong"
    assert mismatch.bug == name, (mismatch.bug, str(mismatch))
    assert f"likely bug: {name}" in str(mismatch)
    assert mismatch.html()  # the HTML report renders


@pytest.mark.parametrize("name", ["per-example gradients divided by m",
                                  "the decay missing from each example"])  # fmt: skip
def test_gradient_bugs_are_named_from_the_norms_too(name):
    net = NETS["tanh-softmax"]
    function, _ = _bug(name, net)

    def norms(params, X, Y):
        g = function(params, X, Y)
        flat = np.concatenate([v.reshape(X.shape[1], -1) for v in g.values()], axis=1)
        return np.linalg.norm(flat, axis=1)

    with pytest.raises(PerExampleMismatch) as caught:
        check_per_example(norms, net, quantity="norms", settings=SETTINGS)
    assert caught.value.bug == name


def test_a_formula_this_case_cannot_tell_from_correct_code_is_never_named():
    """At m = 1 without decay every gradient bug of the catalogue computes g_i
    itself: values off by 2 tolerances fail, and no bug is named for them."""
    net = NETS["relu-sigmoid"]
    params = network.init_params(net.layer_sizes, net.activations, seed=2)
    params = {key: value + 0.3 for key, value in params.items()}  # off relu's kink
    case = Case(net, params, np.array([[0.5], [-1.0]]), np.array([[1.0]]))
    oracle = per_example_oracle(case)
    off = {key: value + 2 * oracle.tolerances[key] for key, value in oracle.grads.items()}
    assert not compare_per_example(case, off, oracle=oracle).comparison.ok
    assert diagnose_per_example(case, off, oracle=oracle) == []


def test_an_unknown_bug_fails_unnamed_and_a_raising_function_is_reported():
    net = NETS["relu-sigmoid"]

    def sign(params, X, Y):
        return {k: -v for k, v in per_example_gradients(params, X, Y, net).items()}

    with pytest.raises(PerExampleMismatch) as caught:
        check_per_example(sign, net, settings=SETTINGS)
    assert caught.value.bug is None and "none of the catalogued" in str(caught.value)

    def raises(params, X, Y):
        raise RuntimeError("no per-example code yet")

    with pytest.raises(PerExampleMismatch) as caught:
        check_per_example(raises, net, settings=SETTINGS)
    assert caught.value.verdict == "raised" and "no per-example code yet" in str(caught.value)


def test_what_is_no_per_example_value_is_named():
    net = NETS["relu-sigmoid"]
    returns = {
        "gradients": lambda p, X, Y: [1.0, 2.0],
        "norms": lambda p, X, Y: {"W1": 1.0},
    }
    for quantity, function in returns.items():
        with pytest.raises(PerExampleMismatch, match="function returned"):
            check_per_example(function, net, quantity=quantity, settings=SETTINGS)

    def squeezed_bias(p, X, Y):  # B as (m, nl): a shape, named
        return {k: v[..., 0] if k[0] == "B" else v
                for k, v in per_example_gradients(p, X, Y, net).items()}  # fmt: skip

    with pytest.raises(PerExampleMismatch, match=r"B1: shape \(1, 3\), expected \(1, 3, 1\)"):
        check_per_example(squeezed_bias, net, settings=SETTINGS)


def test_a_file_runs_isolated(tmp_path):
    source = tmp_path / "mine.py"
    source.write_text(textwrap.dedent("""
        from manual_bp import Net
        from manual_bp.per_example import per_example_norms

        NET = Net.of([3, 4, 2], ["tanh", "softmax"], "cross_entropy", l2=0.1)


        def norms(params, X, Y):
            return per_example_norms(params, X, Y, NET)
    """))  # fmt: skip
    settings = Settings(max_examples=5, isolate=True, max_batch=4)
    report = check_per_example(f"{source}:norms", NETS["tanh-softmax"], quantity="norms",
                               settings=settings)  # fmt: skip
    assert report.examples == 5 and "child process" in report.isolation


# --- bad arguments ---------------------------------------------------------------------------


def test_bad_arguments_are_named():
    net = NETS["tanh-softmax"]
    good = product_gradients(net)
    with pytest.raises(TypeError, match=r"^function: expected a callable"):
        check_per_example(3, net)
    with pytest.raises(ValueError, match=r"^function: no file 'nowhere.py'"):
        check_per_example("nowhere.py:f", net)
    with pytest.raises(TypeError, match=r"^net: expected a manual_bp.Net"):
        check_per_example(good, [3, 4, 2])
    for bad in (Net.of([3, 4, 2], ["tanh", "softmax"], "cross_entropy", normalization="batch"),
                Net.of([3, 4, 2], ["tanh", "softmax"], "cross_entropy", dropout=0.5)):  # fmt: skip
        with pytest.raises(ValueError, match=r"^net: check_per_example checks plain dense"):
            check_per_example(good, bad)
    with pytest.raises(ValueError, match=r"^quantity: expected 'gradients' or 'norms', got 'norm'"):
        check_per_example(good, net, quantity="norm")
    with pytest.raises(TypeError, match=r"^quantity: expected"):
        check_per_example(good, net, quantity=None)
    with pytest.raises(TypeError, match=r"^settings: expected a Settings"):
        check_per_example(good, net, settings={"max_examples": 3})
    with pytest.raises(ValueError, match=r"^settings.max_width: check_per_example"):
        check_per_example(good, net, settings=Settings(max_width=3))
    with pytest.raises(ValueError, match=r"^settings.stability_check: check_per_example"):
        check_per_example(good, net, settings=Settings(stability_check=True))
    with pytest.raises(TypeError):
        check_per_example(good, net, "norms")  # keyword-only
    case = Case(net, network.init_params(net.layer_sizes, net.activations, seed=0),
                np.ones((3, 2)), np.eye(2))  # fmt: skip
    with pytest.raises(ValueError, match=r"^quantity"):
        compare_per_example(case, {}, quantity="grads")
    with pytest.raises(ValueError, match=r"^compiled"):
        per_example_oracle(case, compiled="jit")


# --- the oracle's own laws, on drawn nets of every activation and loss ------------------------

SMALL = networks(max_depth=3, max_width=4, max_batch=5, dtypes=("float64",), param_bound=3.0,
                 input_bound=3.0)  # fmt: skip


@examples(0.3)
@given(SMALL, st.sampled_from([0.0, 0.3]))
def test_the_oracles_mean_is_the_batch_gradient_and_the_product_passes(drawn, l2):
    from manual_bp_reference.kinks import away_from_kinks

    drawn = away_from_kinks(drawn)
    case = Case(drawn.net.with_l2(l2), drawn.params, drawn.X, drawn.Y)
    before = {key: np.array(value) for key, value in case.params.items()}
    oracle = per_example_oracle(case, compiled="bucket")  # one compile for every drawn net
    batch = oracle_gradients(case, compiled="bucket").grads
    for key, value in oracle.grads.items():
        tol = oracle.tolerances[key]
        decay = l2 * np.asarray(case.params[key]) if key[0] == "W" else 0.0
        # The mean of the g_i is the batch gradient (each g_i carries the decay once),
        # within the sum of the examples' tolerances (the mean's own rounding included).
        assert (np.abs(value.mean(axis=0) - batch[key] - decay) <= tol.sum(axis=0)).all(), key
    # The product's functions pass compare_per_example on every drawn net.
    params, X, Y = dict(case.params), np.array(case.X), np.array(case.Y)
    run = compare_per_example(case, per_example_gradients(params, X, Y, case.net), oracle=oracle)
    assert run.comparison.ok and not run.details, run.comparison.report()
    returned = per_example_norms(params, X, Y, case.net)
    kept = returned.copy()
    run = compare_per_example(case, returned, quantity="norms", oracle=oracle)
    assert run.comparison.ok and not run.details and list(run.comparison.variables) == [NORMS]
    np.testing.assert_array_equal(returned, kept)  # the user's values are not written into
    for key, value in before.items():
        np.testing.assert_array_equal(value, case.params[key])


@pytest.mark.parametrize("name", sorted(NETS))
def test_the_network_and_bucket_compilations_agree(name):
    """The network path (``_value_and_grads`` mapped over the columns) and the
    bucket's (``padding``'s scan) are two float64 oracles of the same ``g_i``."""
    net = NETS[name]
    rng = np.random.default_rng(len(name))
    params = {
        k: v + rng.uniform(-0.5, 0.5, v.shape)
        for k, v in network.init_params(net.layer_sizes, net.activations, seed=1).items()
    }
    X = rng.uniform(-2, 2, (net.inputs, 5))
    Y = {"mse": rng.uniform(-1, 1, (net.layer_sizes[-1], 5)),
         "binary_cross_entropy": rng.uniform(0, 1, (net.layer_sizes[-1], 5)),
         "cross_entropy": rng.dirichlet(np.ones(net.layer_sizes[-1]), 5).T}[net.loss]  # fmt: skip
    from manual_bp_reference.kinks import away_from_kinks

    case = away_from_kinks(Case(net, params, X, Y))
    bucketed = per_example_oracle(case, compiled="bucket")
    networked = per_example_oracle(case, compiled="network")
    for key, value in bucketed.grads.items():
        assert (np.abs(value - networked.grads[key]) <= bucketed.tolerances[key]).all(), key
    assert (np.abs(bucketed.norms - networked.norms) <= bucketed.norm_tolerances).all()


def test_the_catalogue_is_documented():
    from manual_bp_reference import per_example_check

    doc = per_example_check.__doc__ or ""
    assert len(BUGS) == len(set(BUG_NAMES)) == 11
    for bug in BUGS:
        assert bug.formula and bug.name
    assert "squared twice" in doc and "||g_i||^4" in doc
