"""The grading spec: which checks a submission must pass, and their points.

A spec is a TOML file (or YAML, with PyYAML installed)::

    name = "Assignment 2: backprop by hand"
    seed = 0                 # the cases every submission is checked on
    timeout = 5              # seconds per call of a student's function
    memory_limit = "1GiB"    # what a student's process may add
    time_limit = 120         # seconds for one submission, every check

    [[check]]
    name = "two-layer backprop"
    kind = "gradients"       # check_gradients
    function = "backprop.py:backward_propagation"   # in the submission's folder
    layers = [2, 4, 1]
    activations = ["tanh", "sigmoid"]
    loss = "binary_cross_entropy"
    conventions = "auto"     # or a table of Conventions fields: {names = "W1/b1"}
    points = 10
    partial = {"correct maths, unstable numerics" = 0.5}   # credit by verdict

    [[check]]
    name = "affine layer"
    kind = "layer"           # check_layer
    function = "layers.py:affine_backward"
    forward = "layers.py:affine_forward"
    layer = "affine"
    points = 5

    [[check]]
    name = "Adam"
    kind = "optimizer"       # check_optimizer
    function = "optim.py:adam"
    optimizer = "adam"
    hyperparameters = {learning_rate = 1e-3}
    style = "cs231n"
    points = 5

A check earns its ``points`` on a pass, ``points * partial[verdict]`` on a
failure whose verdict ``partial`` names, and 0 otherwise, so a submission's
score is the partial credit of its checks.  Each check may also set
``examples`` (the check's default otherwise) and ``visibility``
(Gradescope's: ``visible``, ``hidden``, ``after_due_date``,
``after_published``).  Every key is checked: a misspelt one is an error
naming it and its place, never ignored.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("gradients", "layer", "optimizer")
VISIBILITY = ("visible", "hidden", "after_due_date", "after_published")
# The verdicts partial credit may name: the checks' (``unstable``: NaN/inf the
# bounded rerun did not clear) and the grader's own ``time limit``.
VERDICTS = ("wrong", "raised", "correct maths, unstable numerics", "unstable", "timed out",
            "ended the process", "time limit")  # fmt: skip
# The keys of each kind of check, beside the common ones.
COMMON_KEYS = ("name", "kind", "function", "points", "partial", "examples", "visibility")
KIND_KEYS = {
    "gradients": ("layers", "activations", "loss", "conventions", "forward"),
    "layer": ("layer", "forward", "layout", "targets"),
    "optimizer": ("optimizer", "hyperparameters", "style", "init"),
}
REQUIRED = {
    "gradients": ("layers", "activations", "loss"),
    "layer": ("layer",),
    "optimizer": ("optimizer",),
}
TOP_KEYS = ("name", "seed", "timeout", "memory_limit", "time_limit", "check")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(|k|m|g|ki|mi|gi)b?\s*$", re.I)
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "ki": 2**10, "mi": 2**20, "gi": 2**30}


class SpecError(ValueError):
    """A grading spec that cannot be used, naming the key and its place."""


@dataclass(frozen=True)
class CheckSpec:
    """One check of the spec (see the module notes)."""

    name: str
    kind: str
    function: str
    points: float
    options: dict[str, Any] = field(default_factory=dict)
    partial: dict[str, float] = field(default_factory=dict)
    examples: int | None = None
    visibility: str = "visible"

    @property
    def file(self) -> str:
        """The file the function is in, relative to the submission's folder."""
        return self.function.rpartition(":")[0]

    def credit(self, verdict: str) -> float:
        """The points this check gives a submission with ``verdict``."""
        return self.points if verdict == "pass" else self.points * self.partial.get(verdict, 0.0)


@dataclass(frozen=True)
class Assignment:
    """A whole spec: its checks and the limits every submission runs under."""

    name: str
    checks: tuple[CheckSpec, ...]
    seed: int = 0
    timeout: float = 10.0
    memory_limit: int | None = None
    time_limit: float = 600.0

    @property
    def max_score(self) -> float:
        return sum(check.points for check in self.checks)

    def digest(self) -> str:
        """A fingerprint of everything that decides the scores, the checker's
        version too: a result graded under another spec or version is graded again."""
        from manual_bp import __version__

        text = json.dumps([asdict(self), __version__], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_spec(path: str | Path) -> Assignment:
    """The ``Assignment`` in a ``.toml`` (or ``.yaml``/``.yml``) file."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"spec: no file {str(path)!r}")
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml  # type: ignore[import-untyped]
        except ImportError:
            needs = "spec: a YAML spec needs PyYAML (pip install pyyaml), or use TOML"
            raise SpecError(needs) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise SpecError(f"spec: {path.name} is not valid YAML: {error}") from None
    elif path.suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise SpecError(f"spec: {path.name} is not valid TOML: {error}") from None
    else:
        raise SpecError(f"spec: expected a .toml, .yaml or .yml file, got {path.name!r}")
    return parse_spec(data, where=f"spec: {path.name}")


def parse_spec(data: object, *, where: str = "spec") -> Assignment:
    """The ``Assignment`` of a spec's data (a dict, as TOML or YAML gives it)."""
    if not isinstance(data, Mapping):
        raise SpecError(f"{where}: expected a table of settings and [[check]] entries")
    _known(data, TOP_KEYS, where)
    checks = data.get("check")
    if not isinstance(checks, list) or not checks:
        raise SpecError(f"{where}: expected at least one [[check]] (a list of tables)")
    # Numbered from 1, as a teacher counts the [[check]] tables.
    parsed = tuple(_check(entry, f"{where}: check {i}") for i, entry in enumerate(checks, 1))
    names = [check.name for check in parsed]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise SpecError(
            f"{where}: check names must differ (Gradescope shows them), repeated {repeated}"
        )
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise SpecError(f"{where}: seed: expected an int in [0, 2**32), got {seed!r}")
    return Assignment(
        name=_text(data.get("name", "assignment"), f"{where}: name"),
        checks=parsed,
        seed=seed,
        timeout=_positive(data.get("timeout", 10.0), f"{where}: timeout"),
        memory_limit=_bytes(data.get("memory_limit"), f"{where}: memory_limit"),
        time_limit=_positive(data.get("time_limit", 600.0), f"{where}: time_limit"),
    )


def _check(entry: object, where: str) -> CheckSpec:
    if not isinstance(entry, Mapping):
        raise SpecError(f"{where}: expected a table, got {entry!r}")
    kind = entry.get("kind")
    if kind not in KINDS:
        raise SpecError(f"{where}: kind: expected one of {list(KINDS)}, got {kind!r}")
    _known(entry, COMMON_KEYS + KIND_KEYS[kind], where)
    missing = [key for key in ("name", "function", "points", *REQUIRED[kind]) if key not in entry]
    if missing:
        raise SpecError(f"{where}: missing {', '.join(missing)} (a {kind} check needs them)")
    function = _function(entry["function"], f"{where}: function")
    examples = entry.get("examples")
    if examples is not None and not (_is_int(examples) and examples >= 1):
        raise SpecError(f"{where}: examples: expected a positive int, got {examples!r}")
    visibility = entry.get("visibility", "visible")
    if visibility not in VISIBILITY:
        raise SpecError(
            f"{where}: visibility: expected one of {list(VISIBILITY)}, got {visibility!r}"
        )
    fractions = _partial(entry.get("partial", {}), f"{where}: partial")
    options = {key: entry[key] for key in KIND_KEYS[kind] if key in entry}
    if "forward" in options:
        options["forward"] = _function(options["forward"], f"{where}: forward")
    if "init" in options:
        options["init"] = _function(options["init"], f"{where}: init")
    _arguments(kind, options, where)
    return CheckSpec(
        name=_text(entry["name"], f"{where}: name"), kind=kind, function=function,
        points=_positive(entry["points"], f"{where}: points", zero=True), options=options,
        partial=fractions, examples=examples, visibility=visibility,
    )  # fmt: skip


def _function(value: object, where: str) -> str:
    """``FILE.py:NAME`` with FILE relative to the submission's folder (NAME may be
    dotted: a method of an object the file makes)."""
    function = _text(value, where)
    file, _, name = function.rpartition(":")
    inside = not Path(file).is_absolute() and ".." not in Path(file).parts
    named = bool(name) and all(part.isidentifier() for part in name.split("."))
    if not (file.endswith(".py") and named and inside):
        raise SpecError(
            f"{where}: expected 'FILE.py:NAME' with FILE relative to the submission's "
            f"folder, got {function!r}"
        )
    return function


def _arguments(kind: str, options: dict[str, Any], where: str) -> None:
    """The check's own arguments, checked now: a wrong layer, activation,
    convention or optimizer is the spec's error, not every student's 0."""
    try:
        if kind == "gradients":
            from manual_bp import Net
            from manual_bp_reference.conventions import Conventions

            try:
                Net.of(options["layers"], options["activations"], options["loss"])
            except (TypeError, ValueError) as error:  # Net.of calls the sizes layer_sizes
                raise type(error)(str(error).replace("layer_sizes:", "layers:", 1)) from None
            conventions = options.get("conventions", "auto")
            if isinstance(conventions, Mapping):
                _fields(Conventions, conventions, "conventions")
                Conventions(**conventions)
            elif conventions != "auto":
                raise ValueError(f"conventions: expected 'auto' or a table, got {conventions!r}")
        elif kind == "layer":
            from manual_bp_reference.layer_kinds.kind import layers

            if options["layer"] not in layers():
                raise ValueError(
                    f"layer: expected one of {list(layers())}, got {options['layer']!r}"
                )
            if options.get("layout", "rows") not in ("rows", "columns"):
                raise ValueError(f"layout: expected 'rows' or 'columns', got {options['layout']!r}")
        else:
            from manual_bp.optimizers import OPTIMIZERS, make_optimizer
            from manual_bp_reference.optimizer_styles import STYLES

            hyperparameters = options.get("hyperparameters", {})
            if not isinstance(hyperparameters, Mapping):
                raise ValueError(f"hyperparameters: expected a table, got {hyperparameters!r}")
            hyperparameters = dict(hyperparameters)
            if options["optimizer"] in OPTIMIZERS:
                _fields(OPTIMIZERS[options["optimizer"]], hyperparameters, "hyperparameters")
            make_optimizer(options["optimizer"], hyperparameters.pop("learning_rate", 1e-3),
                           **hyperparameters)  # fmt: skip
            if options.get("style", "step") not in STYLES:
                raise ValueError(f"style: expected one of {list(STYLES)}, got {options['style']!r}")
    except (TypeError, ValueError) as error:
        raise SpecError(f"{where}: {error}") from None


def _fields(cls: type, given: Mapping[str, Any], where: str) -> None:
    """Every key of ``given`` a field of the dataclass ``cls``, else a ValueError naming it."""
    import dataclasses

    names = [field.name for field in dataclasses.fields(cls) if not field.name.startswith("_")]
    unknown = [key for key in given if key not in names]
    if unknown:
        raise ValueError(f"{where}: unknown {unknown[0]!r}; {cls.__name__} takes {names}")


def _partial(partial: object, where: str) -> dict[str, float]:
    """``partial``: the fraction of the points each named verdict earns."""
    if not isinstance(partial, Mapping):
        raise SpecError(f"{where}: expected a table of verdict = fraction, got {partial!r}")
    fractions = {}
    for verdict, fraction in partial.items():
        if verdict not in VERDICTS:
            raise SpecError(
                f"{where}: unknown verdict {verdict!r}; expected one of {list(VERDICTS)}"
            )
        number = isinstance(fraction, int | float) and not isinstance(fraction, bool)
        if not (number and 0 <= fraction <= 1):
            raise SpecError(f"{where}.{verdict}: expected a fraction in [0, 1], got {fraction!r}")
        fractions[verdict] = float(fraction)
    return fractions


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _known(table: Mapping, keys: tuple[str, ...], where: str) -> None:
    unknown = [key for key in table if key not in keys]
    if unknown:
        raise SpecError(f"{where}: unknown key {unknown[0]!r}; expected some of {list(keys)}")


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def _positive(value: object, where: str, *, zero: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not (value >= 0 if zero else value > 0) or value != value or value == float("inf"):  # type: ignore[operator]
        bound = ">= 0" if zero else "> 0"
        raise SpecError(f"{where}: expected a finite number {bound}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def _bytes(value: object, where: str) -> int | None:
    """Bytes from an int or a size such as ``"512MiB"``, ``"1GB"``."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    if match is None or float(match.group(1)) <= 0:
        raise SpecError(f"{where}: expected bytes (an int) or a size such as '1GiB', got {value!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])
