"""``Config``: what decides a campaign's totals (a resumed run must match it)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from manual_bp.net import Net
from manual_bp_reference.campaign.outcome import Outcome, verify
from manual_bp_reference.conventions import Conventions
from manual_bp_reference.draws import (
    DEFAULT_LIMITS,
    DTYPES,
    Example,
    Limits,
    check_plain,
    draw_example,
)
from manual_bp_reference.isolation import (
    DEFAULT_TIMEOUT,
    Isolation,
)

DEFAULT_TARGET = "manual_bp"
SEED_BOUND = 2**63


@dataclass(frozen=True)
class Config:
    """What decides a campaign's totals (a resumed run must match it).

    ``network``: check only that network (a plain ``manual_bp.Net``),
    drawing the batch size and values; a user's ``target`` is then called as
    ``check_gradients`` calls it, ``backprop(params, X, Y)`` in
    ``conventions`` (default ``Conventions()``, ours).  ``dtypes``: example
    ``i`` is in ``dtypes[i % len(dtypes)]``.
    """

    examples: int
    seed: int = 0
    chunk_size: int = 500
    target: str = DEFAULT_TARGET
    limits: Limits = DEFAULT_LIMITS
    network: Net | None = None
    conventions: Conventions | None = None
    dtypes: tuple[str, ...] = DTYPES
    # Seconds per call of a user's target (manual_bp_reference.isolation); not in the
    # digest: it changes no verdict of code that returns.
    timeout: float | None = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        Isolation(timeout=self.timeout)  # checks it
        for name in ("examples", "chunk_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer):
            raise ValueError(f"seed: expected an int, got {self.seed!r}")
        if not 0 <= self.seed < SEED_BOUND:
            raise ValueError(f"seed: expected 0 <= seed < 2**63, got {self.seed}")
        object.__setattr__(self, "seed", int(self.seed))  # a NumPy int too: JSON takes int
        if not isinstance(self.target, str):
            raise TypeError(
                f"target: expected a str such as 'file.py:backprop', got {self.target!r}"
            )
        where, colon, name = self.target.rpartition(":")
        if colon and where.endswith(".py") and not Path(where).is_absolute():
            # Workers load it again, maybe in another folder: by its absolute path.
            object.__setattr__(self, "target", f"{Path(where).resolve()}:{name}")
        if not isinstance(self.limits, Limits):
            raise TypeError(f"limits: expected a draws.Limits, got {self.limits!r}")
        if self.network is not None:
            check_plain(self.network)
        if (
            isinstance(self.dtypes, str)
            or not self.dtypes
            or any(d not in DTYPES for d in self.dtypes)
        ):
            raise ValueError(
                f"dtypes: expected a non-empty list of {list(DTYPES)}, got {self.dtypes!r}"
            )
        object.__setattr__(self, "dtypes", tuple(self.dtypes))
        if self.conventions is not None:
            if not isinstance(self.conventions, Conventions):
                raise TypeError(
                    f"conventions: expected a manual_bp_reference.conventions.Conventions, "
                    f"got {self.conventions!r}"
                )
            if self.network is None or self.target == DEFAULT_TARGET:
                raise ValueError(
                    "conventions: a user's target on one network (target and network) takes "
                    f"conventions; got target {self.target!r}, network {self.network!r}"
                )
            self.conventions.check_targets(self.network.loss, self.network.layer_sizes[-1])
            if self.conventions == Conventions():  # ours, given explicitly: the same campaign
                object.__setattr__(self, "conventions", None)

    @property
    def chunks(self) -> int:
        return -(-self.examples // self.chunk_size)

    def chunk_range(self, chunk: int) -> range:
        start = chunk * self.chunk_size
        return range(start, min(start + self.chunk_size, self.examples))

    @property
    def call_conventions(self) -> Conventions | None:
        """The conventions a user's target is called in: ``None`` for the
        five-argument form on drawn architectures (and for manual_bp)."""
        if self.network is None or self.target == DEFAULT_TARGET:
            return None
        return self.conventions or Conventions()

    def draw(self, index: int, *, seed: int | None = None) -> Example:
        """Example ``index`` (of ``seed``, default this campaign's)."""
        conventions = self.call_conventions
        return draw_example(
            self.seed if seed is None else seed, index, limits=self.limits,
            network=self.network, dtypes=self.dtypes,
            hard_targets=conventions is not None and conventions.targets != "soft",
        )  # fmt: skip

    def verify(self, example: Example, backprop: Callable | None) -> Outcome:
        """``verify`` with this campaign's conventions (``backprop`` is the loaded target)."""
        return verify(example, backprop=backprop, conventions=self.call_conventions)

    @property
    def digest(self) -> str:
        """What tells this campaign's property apart in the example database
        (besides the property's source, which Hypothesis hashes too): the target,
        the limits, and any network, conventions and dtypes."""
        text = f"{self.target} {self.limits}"
        if self.network is not None:
            text += f" {_network_text(self.network)} {self.call_conventions}"
        if self.dtypes != DTYPES:
            text += f" {self.dtypes}"
        return text

    def as_dict(self) -> dict:
        return {
            "examples": self.examples,
            "seed": self.seed,
            "chunk_size": self.chunk_size,
            "target": self.target,
            "limits": dataclasses.asdict(self.limits),
            "network": None if self.network is None else _network_dict(self.network),
            "conventions": None if self.conventions is None else self.conventions.as_dict(),
            "dtypes": list(self.dtypes),
            "timeout": self.timeout,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Config:
        """The inverse of ``as_dict`` (a manifest of an earlier version lacks the
        network, conventions and dtypes: those were the defaults)."""
        network, conventions = data.get("network"), data.get("conventions")
        return cls(
            data["examples"], data["seed"], data["chunk_size"], data["target"],
            Limits(**data["limits"]),
            None if network is None else Net.of(**network),
            None if conventions is None else Conventions(**conventions),
            tuple(data.get("dtypes", DTYPES)),
            data.get("timeout", DEFAULT_TIMEOUT),
        )  # fmt: skip


def _network_dict(net: Net) -> dict:
    """A one-network campaign's net as its manifest keeps it (and 0.1 kept it)."""
    return {"layer_sizes": net.layer_sizes, "activations": list(net.activations), "loss": net.loss}


def _network_text(net: Net) -> str:
    """The net in a campaign's digest, written as 0.1 wrote it (the repr of
    the ``draws.Network`` it was), so a database's saved failures keep their key."""
    return (
        f"Network(layer_sizes={tuple(net.layer_sizes)!r}, activations={net.activations!r}, "
        f"loss={net.loss!r})"
    )
