"""A catalog of realistic single-line backprop bugs, injected by patching.

No file is edited: ``inject`` takes the source of one function, replaces one
line fragment, compiles the result in the function's own module and swaps
every reference to the original (module attributes and the ``ACTIVATIONS``
and ``LOSSES`` registries) through pytest's ``monkeypatch``, which restores
them afterwards.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
import textwrap
from dataclasses import dataclass
from types import FunctionType

import pytest

from manual_bp import (
    activations,
    affine,
    dropout,
    layers,
    losses,
    network,
    normalization,
    optimizers,
)
from manual_bp.activations import ACTIVATIONS
from manual_bp.losses import LOSSES


@dataclass(frozen=True)
class Mutation:
    """Replace ``old`` by ``new`` (once) in ``module.function``."""

    name: str
    bug_class: str
    function: FunctionType
    old: str
    new: str


def mutated(mutation: Mutation) -> FunctionType:
    """Compile ``mutation.function`` with its one line changed."""
    source = textwrap.dedent(inspect.getsource(mutation.function))
    count = source.count(mutation.old)
    if count != 1:
        raise ValueError(f"{mutation.name}: {mutation.old!r} occurs {count} times")
    namespace = dict(sys.modules[mutation.function.__module__].__dict__)
    exec(compile(source.replace(mutation.old, mutation.new), "<mutant>", "exec"), namespace)
    return namespace[mutation.function.__name__]


def inject(mutation: Mutation, monkeypatch: pytest.MonkeyPatch) -> None:
    """Swap every reference to the original function (or method) for the mutant."""
    original, mutant = mutation.function, mutated(mutation)
    owner = original.__qualname__.rpartition(".")[0]
    if owner:  # a method: replace it on its class
        cls = getattr(sys.modules[original.__module__], owner)
        monkeypatch.setattr(cls, original.__name__, mutant)
        return
    importers = [
        module
        for name, module in list(sys.modules.items())
        if name.split(".")[0] in ("manual_bp", "manual_bp_reference")
    ]
    for module in importers:
        for attribute, value in list(vars(module).items()):
            if value is original:
                monkeypatch.setattr(module, attribute, mutant)
    for key, activation in ACTIVATIONS.items():
        if activation.derivative is original:
            rebuilt = dataclasses.replace(
                activation, derivative=mutant, backward=activations.elementwise_backward(mutant)
            )
            monkeypatch.setitem(ACTIVATIONS, key, rebuilt)
        elif activation.backward is original:
            monkeypatch.setitem(ACTIVATIONS, key, dataclasses.replace(activation, backward=mutant))
    for key, loss in LOSSES.items():
        changes = {
            field.name: mutant
            for field in dataclasses.fields(loss)
            if getattr(loss, field.name) is original
        }
        if changes:
            monkeypatch.setitem(LOSSES, key, dataclasses.replace(loss, **changes))


# The backward is spread over its steps as the code is: the network's loop
# (network.backward), the dense layer's (layers.Dense.backward) and the affine
# step's (affine.backward).  Each writes a gradient into its own slot
# (``out=``); a mutant may instead bind a new array, as the bug would be
# written by hand.  ``key`` holds layer l's names
# (architecture.layer_keys): key.W is "Wl", key.A_prev "A(l-1)".
WEIGHT_GRAD = "matmul(dZ, A_prev.T, out=out_W)"
BIAS = "dZ.sum(axis=1, keepdims=True, out=out_B)"
INPUT_GRAD = "matmul(W.T, dZ, out=out_A)"
AFFINE_CACHE = "dZ, cache[key.A_prev], cache[key.W]"
OUTPUT = "dZ = output_gradient(LOSSES[net.loss], activation, cache[key.Z], cache[key.A], Y)"
HIDDEN = "dZ = activation.backward(dA, Z, A, out=slots.get(key.Z))"
DENSE_BACKWARD = layers.Dense.backward

CATALOG: list[Mutation] = [
    # --- the 1/m of the batch mean
    Mutation(
        "missing 1/m", "missing 1/m", losses.mean_residual, "(A - Y) / _batch_size(Y)", "(A - Y)"
    ),
    Mutation(
        "extra 1/m in dW", "extra 1/m", affine.backward, WEIGHT_GRAD, f"{WEIGHT_GRAD} / dZ.shape[1]"
    ),
    Mutation(
        "cross-entropy divides by n_L",
        "missing 1/m",
        losses._cross_entropy_dZ,
        "/ _batch_size(Y)",
        "/ Y.shape[0]",
    ),
    # --- signs
    Mutation(
        "output gradient sign flipped",
        "sign flip",
        network.backward,
        OUTPUT,
        OUTPUT.replace("= ", "= -", 1),
    ),
    Mutation(
        "residual written Y - A",
        "sign flip",
        losses.mean_residual,
        "return (A - Y)",
        "return (Y - A)",
    ),
    # --- transposes and wrong layers
    Mutation(
        "dW transposed",
        "transposed matrix",
        affine.backward,
        WEIGHT_GRAD,
        "A_prev @ dZ.T",
    ),
    Mutation(
        "dA uses W instead of W^T",
        "transposed matrix",
        affine.backward,
        INPUT_GRAD,
        "W @ dZ",
    ),
    Mutation(
        "dW uses A_l instead of A_(l-1)",
        "cache entry from the wrong layer",
        layers.Dense.backward,
        AFFINE_CACHE,
        "dZ, cache[key.A], cache[key.W]",
    ),
    Mutation(
        "derivative gets A and Z swapped",
        "cache entry from the wrong layer",
        DENSE_BACKWARD,
        HIDDEN,
        HIDDEN.replace("Z, A, out", "A, Z, out"),
    ),
    Mutation(
        "loop stops before layer 1",
        "off by one layer",
        network.backward,
        "range(depth, 0, -1)",
        "range(depth, 1, -1)",
    ),
    # --- the bias
    Mutation(
        "bias summed over the wrong axis",
        "bias sum axis",
        affine.backward,
        BIAS,
        "np.sum(dZ, axis=0, keepdims=True)",
    ),
    Mutation(
        "bias averaged instead of summed",
        "bias sum axis",
        affine.backward,
        BIAS,
        "np.mean(dZ, axis=1, keepdims=True)",
    ),
    Mutation(
        "bias from the first sample only", "bias sum axis", affine.backward, BIAS, "dZ[:, :1]"
    ),
    # --- activation derivatives
    Mutation(
        "hidden layers skip f'",
        "wrong activation derivative",
        DENSE_BACKWARD,
        HIDDEN,
        "dZ = dA",
    ),
    Mutation(
        "sigmoid' written in Z",
        "wrong activation derivative",
        activations._sigmoid_derivative,
        "np.multiply(A, np.subtract(1, A,",
        "np.multiply(Z, np.subtract(1, Z,",
    ),
    Mutation(
        "tanh' = 1 - A",
        "wrong activation derivative",
        activations._tanh_derivative,
        "np.multiply(A, A, out=out)",
        "A",
    ),
    Mutation(
        "relu'(0) = 1",
        "wrong activation derivative",
        activations._relu_derivative,
        "np.greater(Z, 0",
        "np.greater_equal(Z, 0",
    ),
    Mutation(
        "leaky_relu'(0) = 0.01",
        "wrong activation derivative",
        activations._leaky_relu_derivative,
        "_leaky_relu_side(Z)",
        "Z > 0",
    ),
    Mutation(
        "elu' = A below 0", "wrong activation derivative", activations._elu_derivative, "A + 1", "A"
    ),
    Mutation(
        "softplus' = sigmoid'",
        "wrong activation derivative",
        activations._softplus_derivative,
        "_sigmoid_kernel(Z, _new_or(out, Z))",
        "_as_result(sigmoid(Z) * (1 - sigmoid(Z)), Z, out)",
    ),
    Mutation(
        "silu' sign inside",
        "wrong activation derivative",
        activations._silu_derivative,
        "(1 + Z * (1 - s))",
        "(1 + Z * s)",
    ),
    Mutation(
        "gelu' without the product rule",
        "wrong activation derivative",
        activations._gelu_derivative,
        " + Z * (0.5 * (1 - t * t) * du_dz)",
        "",
    ),
    # --- softmax
    Mutation(
        "softmax handled as elementwise",
        "softmax as elementwise",
        activations._softmax_backward,
        "dA - np.sum(A * dA, axis=0, keepdims=True)",
        "(1 - A) * dA",
    ),
    Mutation(
        "softmax JVP summed over the batch",
        "softmax as elementwise",
        activations._softmax_backward,
        "axis=0",
        "axis=1",
    ),
    # --- the output layer
    Mutation(
        "fused gradient for every pair",
        "wrong activation derivative",
        losses.output_gradient,
        "if activation.name == loss.canonical_activation:",
        "if True:",
    ),
    Mutation(
        "mse keeps the 2 of the square",
        "factor of 2 in mse",
        losses.output_gradient,
        "loss.dA(A_L, Y)",
        "2 * loss.dA(A_L, Y)",
    ),
]


# Normalization bugs: caught by ``property_tests.test_normalization``'s
# property (both backward forms against jax.grad, and the running statistics
# against the batch's moments), not by the main property, whose networks have
# no normalization step.
NORMALIZATION_CATALOG: list[Mutation] = [
    Mutation(
        "missing 1/m in the mean path",
        "normalization",
        normalization.staged_backward,
        "dvar * (2 / k) * D + dmu / k",
        "dvar * (2 / k) * D + dmu",
    ),
    Mutation(
        "missing 1/m in the closed form",
        "normalization",
        normalization.closed_backward,
        "(inv_std / k) * bracket",
        "inv_std * bracket",
    ),
    Mutation(
        "unbiased variance in the backward of a biased one",
        "normalization",
        normalization.staged_backward,
        "dvar * (2 / k) * D",
        "dvar * (2 / (k - 1)) * D",
    ),
    Mutation(
        "forgotten dgamma path through Zhat",
        "normalization",
        normalization.parameter_gradients,
        "(dN * Zhat).sum(axis=1, keepdims=True)",
        "dN.sum(axis=1, keepdims=True)",
    ),
    Mutation(
        "gamma forgotten in dZhat",
        "normalization",
        normalization.closed_backward,
        'dZhat = cache[f"gamma{l}"] * dN',
        "dZhat = dN",
    ),
    Mutation(
        "eps outside the sqrt",
        "normalization",
        normalization.staged_backward,
        "(-0.5 * inv_std**3)",
        '(-0.5 / (np.sqrt(cache[f"var{l}"]) + EPS) ** 3)',
    ),
    Mutation(
        "running variance from the wrong moment",
        "normalization",
        normalization.update_running,
        '(("running_mean", "mu"), ("running_var", "var"))',
        '(("running_mean", "mu"), ("running_var", "inv_std"))',
    ),
    Mutation(
        "layer-norm axis swapped",
        "normalization",
        normalization.closed_backward,
        "axis = AXIS[kind]",
        'axis = AXIS["batch"]',
    ),
]


# Weight decay and dropout bugs: caught by the main property on cases that draw
# a decay and dropout (``networks(regularization=True)``,
# ``property_tests.test_gradients``).
REGULARIZATION_CATALOG: list[Mutation] = [
    Mutation(
        "decay applied to biases",
        "weight decay",
        network.backward,
        "for name in (key.W,):",
        "for name in (key.W, key.B):",
    ),
    Mutation(
        "decay term missing its lambda",
        "weight decay",
        network.backward,
        "l2_penalty_gradient(weights[name], l2)",
        "weights[name]",
    ),
    Mutation(
        "mask not rescaled by 1/(1 - p)",
        "dropout",
        dropout.backward,
        "return (dA * M) / (1 - rate)",
        "return dA * M",
    ),
    Mutation(
        "mask redrawn in backward",
        "dropout",
        DENSE_BACKWARD,
        'dropout.backward(dA, cache[f"M{key.l}"], self.dropout)',
        "dropout.backward(dA, np.random.default_rng().random(A.shape) >= self.dropout, "
        "self.dropout)",
    ),
]


# --- optimizer bugs, caught by the optax step property (test_optimizers.py) -----------


@dataclass(frozen=True)
class OptimizerMutation(Mutation):
    """A bug in one optimizer's rule; ``kind`` names the optimizer it breaks."""

    kind: str = ""


OPTIMIZER_CATALOG: list[OptimizerMutation] = [
    OptimizerMutation(
        "Adam without bias correction",
        "optimizer",
        optimizers.Adam.adam_direction,
        "if self.bias_correction:",
        "if False:",
        kind="adam",
    ),
    OptimizerMutation(
        "momentum with the wrong sign",
        "optimizer",
        optimizers.Momentum.rule,
        'self.momentum * slots["m"] + (1.0 - self.dampening) * g',
        'self.momentum * slots["m"] - (1.0 - self.dampening) * g',
        kind="momentum",
    ),
    OptimizerMutation(
        "RMSProp squared-gradient average with the wrong decay",
        "optimizer",
        optimizers.RMSProp.rule,
        "(1.0 - self.decay) * (g * g)",
        "self.decay * (g * g)",
        kind="rmsprop",
    ),
    OptimizerMutation(
        "AdamW couples the decay into the gradient",
        "optimizer",
        optimizers.AdamW.rule,
        "self.adam_direction(g, slots, t, ops)\n    decay = lam * theta",
        "self.adam_direction(g + lam * theta, slots, t, ops)\n    decay = 0 * theta",
        kind="adamw",
    ),
    OptimizerMutation(
        "Nesterov steps along the old momentum",
        "optimizer",
        optimizers.Momentum.rule,
        "direction = g + self.momentum * m if",
        'direction = g + self.momentum * slots["m"] if',
        kind="momentum",
    ),
    OptimizerMutation(
        "RMSProp forgets eps",
        "optimizer",
        optimizers.RMSProp.rule,
        "denominator = ops.sqrt(v_hat + self.eps)",
        "denominator = ops.sqrt(v_hat)",
        kind="rmsprop",
    ),
]
