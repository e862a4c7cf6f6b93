"""The manifest: finished chunks, appended as they arrive, so that a run can resume."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from manual_bp_reference.campaign.config import DEFAULT_TARGET, Config

# How examples are judged; a resumed campaign must be judged as it began.  Version 2
# keeps a user's target's kinked units off the kink (manual_bp's target is unchanged).
RULES = 2


def paths(out: Path | str) -> dict[str, Path]:
    """``<out>.json`` (summary), ``<out>.png`` (plot), ``<out>.manifest.jsonl`` (chunks)."""
    out = Path(out)
    stem = out.with_suffix("") if out.suffix == ".json" else out
    return {
        "summary": stem.with_name(stem.name + ".json"),
        "plot": stem.with_name(stem.name + ".png"),
        "manifest": stem.with_name(stem.name + ".manifest.jsonl"),
    }


def target_digest(target: str) -> str | None:
    """The SHA-256 of a file target's source (``None`` for a module or manual_bp)."""
    where = target.rpartition(":")[0]
    if not where.endswith(".py") or not os.path.isfile(where):
        return None
    return hashlib.sha256(Path(where).read_bytes()).hexdigest()


def read_manifest(path: Path, config: Config) -> dict[int, dict]:
    """The chunks a previous run of ``config`` completed, by chunk number."""
    lines = path.read_text().splitlines()
    if not lines:
        return {}
    header = json.loads(lines[0])
    if Config.from_dict(header["config"]) != config:
        ours = config.as_dict()
        theirs = Config.from_dict(header["config"]).as_dict()
        differ = "; ".join(
            f"{name} {theirs[name]!r} there, {ours[name]!r} here"
            for name in ours
            if ours[name] != theirs[name]
        )
        raise ValueError(f"resume: {path} is another campaign: {differ}")
    recorded = header.get("target_digest")
    if recorded is not None and recorded != target_digest(config.target):
        raise ValueError(
            f"resume: the target file of {config.target!r} changed since the campaign "
            "began; its chunks judged the old code: start a new campaign"
        )
    if header.get("rules", 1) != RULES and config.target != DEFAULT_TARGET:
        raise ValueError(
            f"resume: {path} was checked by the rules of version {header.get('rules', 1)}; "
            f"a user's target is now checked by version {RULES} (kinked units kept off the "
            "kink), and one total cannot mix them: start a new campaign"
        )
    done = {}
    for number, line in enumerate(lines[1:], start=2):
        try:
            chunk = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # a line cut short by a crash: run that chunk again
                break
            raise ValueError(f"resume: {path} line {number} is not JSON") from None
        done[chunk["chunk"]] = chunk
    return done
