"""One example rebuilt from its campaign and checked again."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from manual_bp.net import Net
from manual_bp_reference.campaign.config import DEFAULT_TARGET, Config
from manual_bp_reference.campaign.manifest import paths, target_digest
from manual_bp_reference.campaign.outcome import Outcome
from manual_bp_reference.campaign.targets import target_function
from manual_bp_reference.conventions import Conventions
from manual_bp_reference.draws import DEFAULT_LIMITS, DTYPES, Example, Limits


def run_example(
    seed: int,
    index: int,
    *,
    target: str = DEFAULT_TARGET,
    limits: Limits = DEFAULT_LIMITS,
    network: Net | None = None,
    conventions: Conventions | None = None,
    dtypes: tuple[str, ...] = DTYPES,
) -> tuple[Example, Outcome]:
    """Rebuild example ``index`` of seed ``seed`` and check it: how a worst case is
    replayed.  The keywords are those of the campaign (``Config``)."""
    config = Config(1, seed, 1, target, limits, network, conventions, dtypes)
    example = config.draw(index)
    return example, config.verify(example, target_function(config))


def replay(out: Path | str, index: int) -> tuple[Example, Outcome]:
    """Rebuild and recheck example ``index`` of the campaign written at ``out``
    (the ``Config`` in its manifest's first line).  Warns when the target's
    file changed since the campaign began: the recheck is of today's code."""
    files = paths(out)
    if not files["manifest"].exists():
        raise ValueError(f"out: no campaign at {out} (no {files['manifest']})")
    header = json.loads(files["manifest"].read_text().splitlines()[0])
    config = Config.from_dict(header["config"])
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < config.examples:
        raise ValueError(
            f"index: expected an int in 0..{config.examples - 1} (the campaign's examples), "
            f"got {index!r}"
        )
    recorded = header.get("target_digest")
    if recorded is not None and recorded != target_digest(config.target):
        warnings.warn(
            f"{config.target}: the file changed since the campaign ran; this checks its "
            "current code",
            stacklevel=2,
        )
    example = config.draw(index)
    return example, config.verify(example, target_function(config))
