"""Fixtures of the stage-level pipeline tests."""

from _acme import acme

__all__ = ["acme"]
