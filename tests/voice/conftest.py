"""Fixtures for the voice tests: an imitation vits-simple-api server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.voice.vits_server import FakeVits


@pytest.fixture
def vits() -> Iterator[FakeVits]:
    """A fresh vits-simple-api imitation on 127.0.0.1 (no API key)."""
    with FakeVits() as server:
        yield server
