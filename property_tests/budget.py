"""Example budgets relative to the loaded profile's ``max_examples``."""

from hypothesis import settings


def examples(fraction: float) -> settings:
    """``settings`` running ``fraction`` of the profile's examples (at least 5)."""
    return settings(max_examples=max(5, int(settings.default.max_examples * fraction)))
