"""What the tests that start ./bin/serve's launcher share: a free port, and a
database URL of its own beside the one the suite runs on."""

from __future__ import annotations

import socket
from urllib.parse import urlparse, urlunparse


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def on(url: str, name: str) -> str:
    """``url`` naming the database ``name``."""
    return urlunparse(urlparse(url)._replace(path=f"/{name}"))
