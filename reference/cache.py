"""The per-user cache folder: where a check keeps what it may reuse.

Two things live there, never in the working directory: Hypothesis's files
(``check_run.quiet_storage``) and jax's compiled oracles
(``jax_setup``: the persistent compilation cache).  The folder is the
platform's (``platformdirs``): ``~/.cache/manual-bp`` on Linux
(``$XDG_CACHE_HOME`` honoured), ``~/Library/Caches/manual-bp`` on macOS,
``%LOCALAPPDATA%\\manual-bp\\Cache`` on Windows.

``MANUAL_BP_COMPILE_CACHE`` chooses the compiled oracles' folder: unset, the
cache folder's ``jax``; ``off`` (or ``0``, ``false``, ``no``), none; an
absolute path, that folder.

>>> import os
>>> saved = os.environ.pop("MANUAL_BP_COMPILE_CACHE", None)  # the user's, put back below
>>> os.environ["MANUAL_BP_COMPILE_CACHE"] = "off"
>>> compile_cache_folder() is None
True
>>> os.environ["MANUAL_BP_COMPILE_CACHE"] = "here"
>>> compile_cache_folder()
Traceback (most recent call last):
ValueError: MANUAL_BP_COMPILE_CACHE: expected an absolute path or 'off', got 'here'
>>> del os.environ["MANUAL_BP_COMPILE_CACHE"]
>>> compile_cache_folder() == cache_folder() / "jax"
True
>>> if saved is not None:
...     os.environ["MANUAL_BP_COMPILE_CACHE"] = saved
"""

from __future__ import annotations

import os
from pathlib import Path

COMPILE_CACHE_VARIABLE = "MANUAL_BP_COMPILE_CACHE"
OFF = ("off", "0", "false", "no")


def cache_folder() -> Path:
    """The platform's per-user cache folder of manual-bp."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("manual-bp", appauthor=False))


def compile_cache_folder() -> Path | None:
    """Where compiled oracles are kept (``None``: turned off).  A relative
    path is refused: the cache never lands in whatever the working directory
    happens to be."""
    setting = os.environ.get(COMPILE_CACHE_VARIABLE, "").strip()
    if setting.lower() in OFF:
        return None
    if not setting:
        return cache_folder() / "jax"
    path = Path(setting).expanduser()
    if not path.is_absolute():
        raise ValueError(
            f"{COMPILE_CACHE_VARIABLE}: expected an absolute path or 'off', got {setting!r}"
        )
    return path
