"""A generated class of submissions for ``manual-bp grade``: what students hand in.

Every submission is a folder with ``backprop.py`` defining
``two_layer_grads(params, X, Y)`` for the network ``[3, 4, 2]``, relu then
softmax, cross-entropy (``SPEC``), written as a student writes it:

* correct, in the three teaching styles: the deeplearning.ai course's
  (samples as columns, ``dW1`` keys), cs231n's (samples as rows, integer
  labels, a ``(loss, grads)`` pair) and Nielsen's (``backprop(x, y)`` one
  sample at a time, summed over the batch as ``update_mini_batch`` does);
* each bug of ``BUGS``, a classic of the course's code, one per bug class
  the diagnosis names (``property_tests/mutations.py``'s catalogue);
* hostile: hanging, ``sys.exit(0)``, ``os._exit``, printing a million lines
  (when its file is loaded),
  allocating 10 GB, writing outside its folder, raising, returning None;
* a missing file.

``KINDS`` names them all with the verdict each must get; ``make_class``
writes a class of any size, cycling through the kinds.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from benchmarks import real_styles

SPEC = """\
name = "Two-layer backprop"
seed = 0
timeout = {timeout}
memory_limit = "2GiB"
time_limit = 60

[[check]]
name = "two_layer_grads"
kind = "gradients"
function = "backprop.py:two_layer_grads"
layers = [3, 4, 2]
activations = ["relu", "softmax"]
loss = "cross_entropy"
examples = {examples}
points = 10
"""


def as_submission(function: Callable[..., object]) -> str:
    """A correct backprop of ``benchmarks.real_styles`` as a student's file:
    NumPy imported, the function named as the assignment asks."""
    text = inspect.getsource(function)
    return "import numpy as np\n\n\n" + text.replace(f"def {function.__name__}(",
                                                        "def two_layer_grads(", 1)  # fmt: skip


# The course's (columns, dW1 keys, its dA1 beside them) and cs231n's (rows,
# integer labels, a (loss, grads) pair), as test_inference checks them.
COURSE = as_submission(real_styles.course_two_layer)
CS231N = as_submission(real_styles.cs231n_two_layer)

NIELSEN = """\
import numpy as np


def backprop(weights, biases, x, y):
    \"\"\"One sample, as network.py does it: (nabla_b, nabla_w).\"\"\"
    activation, activations, zs = x, [x], []
    for i, (b, w) in enumerate(zip(biases, weights)):
        z = np.dot(w, activation) + b
        zs.append(z)
        if i < len(weights) - 1:
            activation = np.maximum(0, z)
        else:
            e = np.exp(z - np.max(z))
            activation = e / np.sum(e)
        activations.append(activation)
    delta = activations[-1] - y
    nabla_b = [np.zeros(b.shape) for b in biases]
    nabla_w = [np.zeros(w.shape) for w in weights]
    nabla_b[-1] = delta
    nabla_w[-1] = np.dot(delta, activations[-2].transpose())
    for l in range(2, len(weights) + 1):
        delta = np.dot(weights[-l + 1].transpose(), delta) * (zs[-l] > 0)
        nabla_b[-l] = delta
        nabla_w[-l] = np.dot(delta, activations[-l - 1].transpose())
    return nabla_b, nabla_w


def two_layer_grads(params, X, Y):
    \"\"\"update_mini_batch's sum over the samples, divided by their number.\"\"\"
    weights, biases = [params["W1"], params["W2"]], [params["b1"], params["b2"]]
    nabla_b = [np.zeros(b.shape) for b in biases]
    nabla_w = [np.zeros(w.shape) for w in weights]
    m = X.shape[1]
    for j in range(m):
        delta_b, delta_w = backprop(weights, biases, X[:, j:j + 1], Y[:, j:j + 1])
        nabla_b = [nb + dnb for nb, dnb in zip(nabla_b, delta_b)]
        nabla_w = [nw + dnw for nw, dnw in zip(nabla_w, delta_w)]
    return {"W1": nabla_w[0] / m, "b1": nabla_b[0] / m,
            "W2": nabla_w[1] / m, "b2": nabla_b[1] / m}
"""

# The course's code with one classic bug: (text replaced, by what).
BUGS = {
    "missing 1/m": ("dW2 = 1 / m * np.dot(dZ2, A1.T)", "dW2 = np.dot(dZ2, A1.T)"),
    "transposed dW": ("dW1 = 1 / m * np.dot(dZ1, X.T)", "dW1 = (1 / m * np.dot(dZ1, X.T)).T.T.T"),
    "relu derivative": ("dZ1 = np.array(dA1, copy=True)", "dZ1 = np.array(dA1 * Z1, copy=True)"),
    "bias sum axis": ("db1 = 1 / m * np.sum(dZ1, axis=1, keepdims=True)",
                      "db1 = 1 / m * np.sum(dZ1, axis=0, keepdims=True)"),
    "dZ2 off by a constant": ("dZ2 = A2 - Y", "dZ2 = A2 - Y + 1e-3"),
    "wrong dA": ("dA1 = np.dot(W2.T, dZ2)", "dA1 = np.dot(W2.T, dZ2) * 2"),
    "sign flip": ("dZ2 = A2 - Y", "dZ2 = Y - A2"),
    "extra 1/m": ("dW2 = 1 / m * np.dot(dZ2, A1.T)", "dW2 = 1 / m * np.dot(dZ2, A1.T) / m"),
    "cache entry from the wrong layer": ("dW2 = 1 / m * np.dot(dZ2, A1.T)",
                                         "dW2 = 1 / m * np.dot(dZ2, Z1.T)"),
}  # fmt: skip

HOSTILE = {
    "hangs": "    while True:\n        pass\n",
    "sys.exit": "    import sys\n    sys.exit(0)\n",
    "os._exit": "    import os\n    os._exit(3)\n",
    "allocates 10 GB": "    big = np.ones(10 * 2**30 // 8)\n",
    "writes outside": "    open('../../escaped.txt', 'w').write('x')\n    open('/tmp/escaped-"
                      "manual-bp.txt', 'w').write('x')\n",
    "raises": "    raise ValueError('shapes do not align')\n",
}  # fmt: skip

# Every kind of submission, with the verdict it must get.
KINDS = {
    "course": "pass",
    "cs231n": "pass",
    "nielsen": "pass",
    **dict.fromkeys((f"bug: {name}" for name in BUGS), "wrong"),
    "hangs": "timed out",
    "sys.exit": "raised",  # SystemExit, caught as any exception
    "os._exit": "ended the process",
    "prints a million lines": "pass",  # loud, but correct
    "allocates 10 GB": "raised",  # MemoryError under the 2 GiB limit
    "writes outside": "raised",  # PermissionError (Landlock)
    "raises": "raised",
    "returns None": "wrong",
    "missing file": "missing",
}


def source(kind: str) -> str | None:
    """``backprop.py`` of a submission of ``kind`` (None: no file)."""
    if kind == "course":
        return COURSE
    if kind == "cs231n":
        return CS231N
    if kind == "nielsen":
        return NIELSEN
    if kind.startswith("bug: "):
        old, new = BUGS[kind.removeprefix("bug: ")]
        assert old in COURSE
        return COURSE.replace(old, new)
    if kind == "returns None":
        return COURSE.replace("    return {", "    result = {")
    if kind == "missing file":
        return None
    if kind == "prints a million lines":  # once, when the file is loaded
        loud = "import numpy as np\n\nfor i in range(10**6):\n    print('loading', i)\n"
        return COURSE.replace("import numpy as np\n", loud, 1)
    first = '    W1, b1, W2, b2 = parameters["W1"]'
    return COURSE.replace(first, HOSTILE[kind] + first, 1)


# examples/grading/submissions: the class the docs grade, each student a kind.
EXAMPLE_CLASS = {
    "ada": "course", "grace": "cs231n", "alan": "nielsen",
    "edsger": "bug: missing 1/m", "barbara": "bug: relu derivative", "ken": "hangs",
}  # fmt: skip


def make_class(folder: Path, size: int, kinds: list[str] | None = None) -> dict[str, str]:
    """``size`` submissions in ``folder``, cycling through ``kinds`` (default
    all of ``KINDS``); returns each submission's name and the verdict it must get."""
    chosen = kinds or list(KINDS)
    expected = {}
    for i in range(size):
        kind = chosen[i % len(chosen)]
        name = f"{i:03d}-{kind.replace(' ', '_').replace(':', '').replace('/', '')}"
        submission = folder / name
        submission.mkdir(parents=True)
        text = source(kind)
        if text is not None:
            (submission / "backprop.py").write_text(text)
        (submission / "README.txt").write_text(f"{kind}\n")
        expected[name] = KINDS[kind]
    return expected
