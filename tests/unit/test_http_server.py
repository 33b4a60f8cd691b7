"""The HTTP server as `saga serve` runs it: uvicorn with its C parser and event loop."""

from __future__ import annotations

import sys

import pytest
from starlette.applications import Starlette
from uvicorn.config import Config


def test_uvicorn_serves_with_httptools_as_saga_serve_starts_it() -> None:
    config = Config(Starlette(), http="auto", loop="auto", log_config=None)
    config.load()

    assert config.http_protocol_class.__name__ == "HttpToolsProtocol"


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop is not made for Windows; asyncio's loop serves there")
def test_uvicorn_runs_on_uvloop() -> None:
    from uvicorn.loops.auto import auto_loop_factory

    factory = auto_loop_factory(use_subprocess=False)

    assert getattr(factory, "__module__", None) == "uvloop"
