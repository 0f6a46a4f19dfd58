"""One private TLS dockerd shared by the remote tests (it takes ~2 s to start)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.remote.tls_engine import TlsEngine


@pytest.fixture(scope="session")
def tls_engine(engine: None) -> Iterator[TlsEngine]:
    eng = TlsEngine()
    try:
        eng.start()
        yield eng
    finally:
        eng.destroy()
