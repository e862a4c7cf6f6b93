"""``Settings``: how a check draws its cases and runs the user's code.

One value for the three checks of users' code, ``check_gradients``,
``check_layer`` and ``check_optimizer``, so that each takes the code, what
it computes (a network, a layer, an optimizer), how the author wrote it
(``conventions``, ``layout``, ``style``) and ``settings``:

>>> from manual_bp_reference.settings import Settings
>>> quick = Settings(max_examples=20, shrink=False)
>>> quick.resolved("check_gradients").max_batch
16
>>> Settings(max_width=4).resolved("check_gradients")
Traceback (most recent call last):
...
ValueError: settings.max_width: check_gradients draws networks, ...

A field left ``None`` takes the check's own default (``DEFAULTS``), and a
field a check has no use for is an error when given, never ignored.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from manual_bp.validation import check_dtype, check_positive_float, check_positive_int
from manual_bp_reference.cases import INPUT_BOUND, PARAM_BOUND
from manual_bp_reference.check_run import check_seed, isolation
from manual_bp_reference.isolation import DEFAULT_TIMEOUT, Isolation

# Each check's defaults for the fields it uses; a field not named is unused.
DEFAULTS: dict[str, dict[str, Any]] = {
    "check_gradients": {
        "max_examples": 100, "max_batch": 16, "input_bound": INPUT_BOUND,
        "param_bound": PARAM_BOUND,
        "kinks": "avoid", "shrink": True, "stability_check": True,
    },
    "check_layer": {
        "max_examples": 100, "max_batch": 8, "max_width": 8, "input_bound": 10.0,
        "shrink": True, "stability_check": True,
    },
    "check_optimizer": {"max_examples": 50, "max_steps": 4},
}  # fmt: skip
# What each check draws, for the error that names a field it does not use.
DRAWS = {
    "check_gradients": "networks, not layers of a width",
    "check_layer": "one layer, not a network's parameters",
    "check_optimizer": "optimizer steps, not batches",
}
# Used by every check.
COMMON = ("dtype", "seed", "timeout", "memory_limit", "isolate", "folder", "confine", "progress")
KINK_MODES = ("avoid", "as drawn")


def _flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return value


@dataclass(frozen=True)
class Settings:
    """How a check draws its cases and runs the user's code.

    Fields (``None``: the check's default; gradients / layer / optimizer):

    * ``max_examples``: cases drawn (100 / 100 / 50);
    * ``dtype``: ``"float64"`` or ``"float32"``, the cases' dtype;
    * ``max_batch``: the largest batch ``m`` (16 / 8 / -);
    * ``max_width``: the largest layer width (- / 8 / -);
    * ``max_steps``: optimizer steps per case (- / - / 4);
    * ``input_bound``: ``|X| <=`` this, and every value a layer check draws
      (100 / 10 / -); ``param_bound``: ``|W|, |B| <=`` this (10 / - / -);
    * ``kinks``: ``"avoid"`` keeps kinked pre-activations off the kink unless
      exactly on it (``manual_bp_reference.kinks``), ``"as drawn"`` leaves them,
      for code that rounds its forward exactly like manual_bp (gradients only);
    * ``shrink``: ``False`` reports the first failing case unshrunk (faster);
    * ``stability_check``: when the user's outputs hold NaN/inf, rerun with
      values bounded by 1 to tell "correct maths, unstable numerics" from
      "wrong";
    * ``seed``: the cases drawn depend on it alone (default 0: the same check
      gives the same verdict every run);
    * ``timeout`` seconds per call of the user's code (``None``: no limit),
      ``memory_limit`` in bytes, ``isolate`` (``None``: a child process
      wherever the system has them; ``manual_bp_reference.isolation``);
    * ``folder``: the working directory of the user's code (``None``: this
      process's), and ``confine``: it may write only there and read only
      there and Python's files (Linux Landlock; for running other people's
      code, as ``manual-bp grade`` does);
    * ``progress``: a bar over the examples (``tqdm.auto``: a widget in
      Jupyter, a bar on a terminal's stderr), drawn once a check has run for
      a second.  ``None``: in a notebook or on a terminal; ``False``: never;
      ``True``: always.
    """

    max_examples: int | None = None
    dtype: str = "float64"
    max_batch: int | None = None
    max_width: int | None = None
    max_steps: int | None = None
    input_bound: float | None = None
    param_bound: float | None = None
    kinks: str | None = None
    shrink: bool | None = None
    stability_check: bool | None = None
    seed: int = 0
    timeout: float | None = DEFAULT_TIMEOUT
    memory_limit: int | None = None
    isolate: bool | None = None
    folder: str | None = None
    confine: bool = False
    progress: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", check_dtype(self.dtype).name)
        for name in ("max_examples", "max_batch", "max_width", "max_steps"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, check_positive_int(getattr(self, name), name))
        for name in ("input_bound", "param_bound"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, check_positive_float(getattr(self, name), name))
        if self.kinks is not None and self.kinks not in KINK_MODES:
            raise ValueError(f"kinks: expected one of {list(KINK_MODES)}, got {self.kinks!r}")
        for name in ("shrink", "stability_check", "progress"):
            if getattr(self, name) is not None:
                _flag(getattr(self, name), name)
        check_seed(self.seed)
        self.isolation()  # timeout, memory_limit and isolate, checked together

    def isolation(self) -> Isolation:
        """How the user's code runs (``isolate=None``: where the system can)."""
        return isolation(
            self.isolate, self.timeout, self.memory_limit, folder=self.folder, confine=self.confine
        )

    def resolved(self, check: str) -> Resolved:
        """These settings with ``check``'s defaults filled in; a field given that
        ``check`` does not use is a ``ValueError`` naming it."""
        defaults = DEFAULTS[check]
        filled: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in defaults:
                filled[field.name] = defaults[field.name] if value is None else value
            elif field.name in COMMON:
                filled[field.name] = value
            elif value is not None:
                raise ValueError(
                    f"settings.{field.name}: {check} draws {DRAWS[check]}; its settings "
                    f"are {', '.join((*defaults, *COMMON))}"
                )
        for name in ("timeout", "memory_limit", "isolate", "folder", "confine"):
            del filled[name]
        filled["isolation"] = self.isolation()
        unused: dict[str, Any] = {
            name: None for name in Resolved.__dataclass_fields__ if name not in filled
        }
        return Resolved(**filled, **unused)


@dataclass(frozen=True)
class Resolved:
    """``Settings`` with one check's defaults filled in: what the check reads.
    A field that check does not use is ``None`` (typed as used, never read)."""

    max_examples: int
    dtype: str
    max_batch: int
    max_width: int
    max_steps: int
    input_bound: float
    param_bound: float
    kinks: str
    shrink: bool
    stability_check: bool
    seed: int
    isolation: Isolation
    progress: bool | None


# The keywords the checks took before ``Settings`` (0.1): each still works for
# one minor release, with a FutureWarning naming its new place.
SETTING_NAMES = tuple(field.name for field in dataclasses.fields(Settings))


def from_old_keywords(
    check: str,
    settings: Settings | None,
    old: Mapping[str, object],
    *,
    conventions: Collection[str] = (),
) -> tuple[Settings, dict[str, Any]]:
    """``settings`` (default ``Settings()``) and the convention keywords among
    ``old``, the keywords ``check`` was given beyond its signature: settings'
    fields (``max_examples=``) and, for ``check_gradients``, conventions'
    (``layout=``).  One ``FutureWarning`` says where they go now; any other
    keyword is the ``TypeError`` Python would raise, with the new spelling."""
    if settings is not None and not isinstance(settings, Settings):
        raise TypeError(f"settings: expected a Settings, got {settings!r}")
    unknown = [name for name in old if name not in SETTING_NAMES and name not in conventions]
    if unknown:
        raise TypeError(
            f"{check}() got an unexpected keyword argument {unknown[0]!r} (it takes "
            f"settings=Settings(...) with fields {', '.join(SETTING_NAMES)})"
        )
    moved = {name: value for name, value in old.items() if name in SETTING_NAMES}
    rest = {name: value for name, value in old.items() if name not in SETTING_NAMES}
    if moved and settings is not None:
        raise ValueError(
            f"settings: give Settings or its old keywords ({', '.join(moved)}=), not both"
        )
    if old:
        new = []
        if moved:
            new.append(f"settings=Settings({', '.join(f'{k}={v!r}' for k, v in moved.items())})")
        if rest:
            new.append(
                f"conventions=Conventions({', '.join(f'{k}={v!r}' for k, v in rest.items())})"
            )
        warnings.warn(
            f"{check}({', '.join(f'{name}=' for name in old)}...) is the 0.1 spelling; write "
            f"{', '.join(new)} (the old keywords go in 0.3)",
            FutureWarning,
            stacklevel=3,
        )
    return (Settings(**moved) if moved else settings or Settings()), rest  # type: ignore[arg-type]
