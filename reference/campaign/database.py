"""The Hypothesis property a campaign samples, and the example database of its failures."""

from __future__ import annotations

import unittest
from collections.abc import Iterable, Iterator

from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from hypothesis.database import (
    DirectoryBasedExampleDatabase,
    ExampleDatabase,
    MultiplexedDatabase,
    choices_to_bytes,
)

from manual_bp.net import Net
from manual_bp_reference.campaign.config import DEFAULT_TARGET, SEED_BOUND, Config
from manual_bp_reference.campaign.targets import target_function
from manual_bp_reference.conventions import Conventions
from manual_bp_reference.draws import DEFAULT_LIMITS, DTYPES, Limits


def campaign_property(
    *,
    target: str = DEFAULT_TARGET,
    limits: Limits = DEFAULT_LIMITS,
    network: Net | None = None,
    conventions: Conventions | None = None,
    dtypes: tuple[str, ...] = DTYPES,
):
    """The property a campaign samples: every example of every seed passes.

    A Hypothesis test of ``(seed, index)``; ``test_x = campaign_property()``
    in a test module makes it a pytest test.  The keywords are those of the
    campaign (``Config``).  Hypothesis keys its database by the digest of
    the inner test's source, signature and ``_hypothesis_internal_add_digest``
    (the mechanism its pytest plugin uses to tell parametrized tests apart),
    here ``Config.digest``: the target, the limits and any network,
    conventions and dtypes.
    """
    config = Config(1, 0, 1, target, limits, network, conventions, dtypes)
    backprop = target_function(config)

    @given(st.integers(0, SEED_BOUND - 1), st.integers(0, SEED_BOUND - 1))
    def every_example_passes(seed: int, index: int) -> None:
        example = config.draw(index, seed=seed)
        outcome = config.verify(example, backprop)
        ratio, key = outcome.worst
        assert outcome.ok, (
            f"{example.describe()}: worst err/tol {ratio:.3g} in {key}\n"
            f"{outcome.error}{outcome.details}"
        )

    # Hypothesis adds .hypothesis to a @given function at run time.  The one
    # private hook left: without it every configuration would share one key
    # (property_tests/test_campaign.py fails if a release drops it).
    inner = every_example_passes.hypothesis.inner_test  # type: ignore[attr-defined]
    inner._hypothesis_internal_add_digest = config.digest.encode()
    return every_example_passes


class _KeyRecorder(ExampleDatabase):
    """A database that holds nothing and records the keys Hypothesis asks for."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: list[bytes] = []

    def save(self, key: bytes, value: bytes) -> None:
        pass

    def fetch(self, key: bytes) -> Iterator[bytes]:
        self.keys.append(key)
        return iter(())

    def delete(self, key: bytes, value: bytes) -> None:
        pass


def database_key(
    *,
    target: str = DEFAULT_TARGET,
    limits: Limits = DEFAULT_LIMITS,
    network: Net | None = None,
    conventions: Conventions | None = None,
    dtypes: tuple[str, ...] = DTYPES,
) -> bytes:
    """The key under which Hypothesis stores the failures of ``campaign_property``.

    Asked of Hypothesis itself, through its public database interface: the
    property runs its reuse phase alone against a database that records the
    keys fetched (the first is the test's own; none of the property's
    examples runs, so Hypothesis ends it as a skip).
    """
    test = campaign_property(
        target=target, limits=limits, network=network, conventions=conventions, dtypes=dtypes
    )
    recorder = _KeyRecorder()
    try:
        settings(database=recorder, phases=[Phase.reuse])(test)()
    except unittest.SkipTest:  # "told to run no test cases": nothing was reused
        pass
    return recorder.keys[0]


def example_database(spec: str | None) -> ExampleDatabase:
    """The database failures go into.

    ``None``: Hypothesis's default local directory ``.hypothesis/examples``;
    ``redis://host:port[/db]``: that Redis server through ``MultiplexedDatabase``
    with the local directory (saves go to both, reads see both); anything
    else: a directory.
    """
    local = DirectoryBasedExampleDatabase(".hypothesis/examples")
    if spec is None:
        return local
    if spec.startswith(("redis://", "rediss://")):
        import redis
        from hypothesis.extra.redis import RedisExampleDatabase

        try:
            client = redis.Redis.from_url(spec)
        except ValueError as error:
            raise ValueError(f"database: not a Redis URL {spec!r}: {error}") from error
        return MultiplexedDatabase(local, RedisExampleDatabase(client))
    return DirectoryBasedExampleDatabase(spec)


def save_failures(database: ExampleDatabase, key: bytes, seed: int, indices: Iterable[int]) -> None:
    """Store each failing ``(seed, index)`` as the choice sequence the property draws."""
    for index in indices:
        database.save(key, choices_to_bytes((seed, int(index))))
