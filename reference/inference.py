"""Conventions inferred: the declaration under which a user's code runs as written.

``check_gradients(backprop, net, conventions="auto")`` (``manual-bp check
--conventions auto``) does not ask how the code lays out its arrays: it calls
the code on one probe case in each *structural* declaration (what the code
accepts and what it returns) and keeps the first under which it returns
gradients that match ``jax.grad`` on the probe.  The structural conventions
are the layout (columns or rows), the names (``W1/B1``, ``W1/b1``, ``w1/b1``), the bias
shape, the container (a dict, a list, Nielsen's ``(nabla_b, nabla_w)``; a
``(loss, grads)`` pair and ``dW1``-style keys are read under any of them), the
targets (soft, one-hot or integer labels) and one sample at a time or a
batch.  A wrong shape, a wrong key or a wrong container is no maths: a
declaration that gets it wrong makes the code raise or return what cannot be
read.  Where the code matches under none (it has a bug), the first
declaration under which it returns readable gradients is kept, else the first
under which it returns at all (a gradient of the wrong shape is then
reported as such), and the check reports the bug in it.  One sample at a
time is tried only for code that raises for a batch under every
declaration: at ``m = 1`` a missing ``1/m`` or a bias gradient not summed
over the batch cannot be seen, so a batch function with such a bug must not
be read as a per-sample one.

The *numerical* conventions, the reduction (mean or sum) and the L2 term,
are never inferred.  A ``dW`` ``m`` times too large is the very same numbers
as a summed loss, and a decay where none was declared the same numbers as
an L2 bug, so inferring them would excuse real bugs.  They stay as declared
(default: the mean, no L2); a failing check says under which of them the code
would pass ("passes on this case with --reduction sum: did you mean it?").

>>> from manual_bp_reference.conventions import Conventions
>>> declaration(Conventions(layout="rows", names="W1/b1", targets="labels"))
("Conventions(layout='rows', names='W1/b1', targets='labels')", \
'--layout rows --names W1/b1 --targets labels')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from manual_bp.net import Net
from manual_bp_reference.cases import Case
from manual_bp_reference.conventions import (
    BIAS_SHAPES,
    NAMINGS,
    Conventions,
    convention_fields,
)
from manual_bp_reference.isolation import UserCodeError, UserCodeStopped
from manual_bp_reference.kinks import away_from_kinks

AUTO = "auto"
# The probe's generator: one fixed case, the same every run.
PROBE_SEED = 20261207


@dataclass(frozen=True)
class Auto:
    """``conventions="auto"`` with some conventions declared: those are kept,
    the structural ones not declared are inferred (``Auto(reduction="sum")``
    is ``--conventions auto --reduction sum``)."""

    declared: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        Conventions(**self.declared)  # every declared value checked here, by name
        object.__setattr__(self, "declared", dict(self.declared))


# How far the code got under the declaration inference kept, best first.
STATUSES = {
    "matched": "",
    "readable": " (the first it returns readable gradients under; it matches jax.grad under none)",
    "ran": " (the first it returns gradients under, some of them misshapen; none matches)",
    "none": " (none: it raised or stopped under every declaration; ours, to report it)",
}


@dataclass(frozen=True)
class Inferred:
    """What inference found: the ``conventions``, the ``function`` they run
    (a key of the runnables given to ``infer``), how far the code got under
    them on the probe (``status``, a key of ``STATUSES``) and how many
    declarations were tried."""

    conventions: Conventions
    function: str
    status: str
    tried: int

    @property
    def matched(self) -> bool:
        return self.status == "matched"

    def note(self) -> str:
        """The inferred declaration as a report line: Python and the flags."""
        python, flags = declaration(self.conventions)
        return (
            "conventions inferred from what your code accepts and returns"
            f"{STATUSES[self.status]}: {python}" + (f" ({flags})" if flags else " (ours)")
        )


def as_auto(conventions: object) -> Auto | None:
    """``Auto`` for ``"auto"`` or an ``Auto``; ``None`` for anything else."""
    if isinstance(conventions, Auto):
        return conventions
    if isinstance(conventions, str):
        if conventions != AUTO:
            raise ValueError(f"conventions: expected a Conventions or 'auto', got {conventions!r}")
        return Auto()
    return None


def declaration(conventions: Conventions) -> tuple[str, str]:
    """``conventions`` as a copyable line: the ``Conventions(...)`` call and
    the command line's flags, each naming only what differs from ours."""
    default = Conventions(layout=conventions.layout)  # the bias shape's default is the layout's
    changed = {}
    for item in convention_fields():
        value = getattr(conventions, item.name)
        if item.name == "layout":
            if value != "columns":
                changed[item.name] = value
        elif value != getattr(default, item.name):
            changed[item.name] = value
    python = "Conventions(" + ", ".join(f"{k}={v!r}" for k, v in changed.items()) + ")"
    flags = []
    for name, value in changed.items():
        flag = "--" + name.replace("_", "-")
        flags.append(flag if value is True else f"{flag} {value}")
    return python, " ".join(flags)


def candidates(auto: Auto, net: Net, *, pair: bool = False) -> Iterator[Conventions]:
    """The declarations inference tries, ours first, then the real styles'
    (cs231n's rows and ``b1``, the course's ``b1``, Nielsen's one sample at a
    time): every structural convention not declared takes each of its values."""
    fixed = auto.declared
    labels = net.loss == "cross_entropy"

    def choices(name: str, values: tuple) -> tuple:
        return (fixed[name],) if name in fixed else values

    seen = set()
    for per_sample in choices("per_sample", (False,) if pair else (False, True)):
        for layout in choices("layout", ("columns", "rows")):
            containers = ("dict", "list", "nabla") if per_sample else ("dict", "list")
            for container in choices("container", containers):
                for names in choices("names", NAMINGS if container == "dict" else ("W1/B1",)):
                    for targets in choices("targets", ("soft", "labels") if labels else ("soft",)):
                        default = Conventions(layout=layout).bias_shape
                        others = tuple(shape for shape in BIAS_SHAPES if shape != default)
                        for bias_shape in choices("bias_shape", (default, *others)):
                            structure = {
                                "per_sample": per_sample, "layout": layout,
                                "container": container, "names": names, "targets": targets,
                                "bias_shape": bias_shape,
                            }  # fmt: skip
                            key = repr(sorted(structure.items()))
                            if key not in seen:
                                seen.add(key)
                                yield Conventions(**{**fixed, **structure})


def probe_case(net: Net, *, soft: bool = False) -> Case:
    """The one fixed case inference runs the code on: the net's sizes, a
    batch size that is none of them (so no transposed array has a valid
    shape), moderate values, kinked units off their kinks; hard targets
    (which every targets convention reads), or ``soft`` ones."""
    rng = np.random.default_rng(PROBE_SEED)
    sizes = net.layer_sizes
    m = next(k for k in range(3, 3 + len(sizes) + 1) if k not in sizes)
    params = {}
    for l in range(1, len(sizes)):
        params[f"W{l}"] = rng.standard_normal((sizes[l], sizes[l - 1])) / np.sqrt(sizes[l - 1])
        params[f"B{l}"] = 0.5 * rng.standard_normal((sizes[l], 1))
    X = rng.standard_normal((sizes[0], m))
    n = sizes[-1]
    Y: np.ndarray
    if net.loss == "mse":
        Y = rng.standard_normal((n, m))
    elif net.loss == "cross_entropy":
        Y = rng.dirichlet(np.ones(n), m).T if soft else np.eye(n)[:, rng.permutation(m) % n]
    else:
        Y = rng.uniform(0.1, 0.9, (n, m)) if soft else (rng.permutation(n * m) % 2).reshape(n, m)
    return away_from_kinks(Case(net.without_dropout(), params, X, np.asarray(Y, dtype=float)))


Attempt = Callable[[str, Case, Conventions], tuple[bool, bool]]


def infer(
    attempt: Attempt,
    runnable_for: Callable[[Conventions], str],
    auto: Auto,
    net: Net,
    *,
    pair: bool = False,
) -> Inferred:
    """The declaration the code runs under, by ``attempt(function, case,
    conventions) -> (readable, matched)`` on the probe case for each of
    ``candidates`` (``runnable_for`` names the runnable a declaration calls).
    Stops at the first that matches; a call that hangs or ends the process
    (``UserCodeStopped``) stops it: raised with the probe case as its
    ``context`` and the declaration as ``conventions``, the check's verdict
    (one timeout, not one here and another on the check's first case)."""
    case = probe_case(net)
    tried = 0
    best: dict[str, Inferred] = {}  # the first declaration of each status
    for conventions in candidates(auto, net, pair=pair):
        if conventions.per_sample and any(
            not each.conventions.per_sample for each in best.values()
        ):
            # Code that returns anything for a batch is a batch: one sample
            # at a time, m = 1 hides a missing 1/m, a bias not summed over
            # the batch, ... (and averaging the samples restores them).
            break
        function = runnable_for(conventions)
        tried += 1
        try:
            ok, matched = attempt(function, case, conventions)
        except UserCodeError:
            continue
        except UserCodeStopped as stopped:
            stopped.context, stopped.conventions = case, conventions
            raise
        if matched:
            if "targets" not in auto.declared:
                conventions = _hard_or_soft(attempt, function, net, conventions)
            return Inferred(conventions, function, "matched", tried)
        best.setdefault("readable" if ok else "ran", Inferred(conventions, function, "", 0))
    for status in ("readable", "ran"):
        if status in best:
            return dataclasses.replace(best[status], status=status, tried=tried)
    first = next(candidates(auto, net, pair=pair))
    return Inferred(first, runnable_for(first), "none", tried)


def _hard_or_soft(
    attempt: Attempt, function: str, net: Net, conventions: Conventions
) -> Conventions:
    """``"soft"`` targets that matched on hard ones: ``"one_hot"`` where the
    code needs them hard (an ``argmax`` of ``Y``), which the soft probe shows."""
    if conventions.targets != "soft" or net.loss == "mse":
        return conventions
    try:
        _, matched = attempt(function, probe_case(net, soft=True), conventions)
    except (UserCodeError, UserCodeStopped):
        matched = False
    return conventions if matched else dataclasses.replace(conventions, targets="one_hot")
