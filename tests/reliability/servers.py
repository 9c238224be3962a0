"""Servers of a test's own to stop and start: a private Redis, and a TCP proxy in
front of PostgreSQL.

The machine's own Redis and PostgreSQL (127.0.0.1:6379 and :5432) serve other
test runs too and are never stopped. An outage of Redis is a private
``redis-server`` (the binary the project embeds, ``config.embedded``) on a
free port, shut down and started again on the same port and data folder (its
append-only file keeps the stream, the groups and their pending entries, as a
production Redis with persistence does). An outage of PostgreSQL is a proxy
the process under test connects through: stopping it drops every connection
through it and refuses new ones, as a server that went away does, while the
server itself, and everyone else's sessions, stay untouched.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """A redis-server of its own on 127.0.0.1:<port>, data in ``folder``."""

    def __init__(self, folder: Path) -> None:
        from config import embedded

        self.binary = str(embedded._redis_binary())
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.folder),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--logfile",
                str(self.folder / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(redis.RedisError):
                if self.client().ping():
                    return
            assert time.monotonic() < deadline, f"redis did not start: {self.folder}/redis.log"
            time.sleep(0.02)

    def stop(self) -> None:
        """SHUTDOWN (the append-only file is written), and wait for the process."""
        assert self.proc is not None
        with contextlib.suppress(redis.ConnectionError):
            self.client().shutdown()
        self.proc.wait(timeout=20)
        self.proc = None

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=20)


class TcpProxy:
    """127.0.0.1:<port> relayed to ``upstream`` ((host, port), or a Unix socket
    path). ``stop`` closes the listener and every relayed connection;
    ``start`` listens again on the same port."""

    def __init__(self, upstream: tuple[str, int] | str) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.listener: socket.socket | None = None
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        listener, self.listener = self.listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self.lock:
            relayed, self.sockets = self.sockets, set()
        for sock in relayed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            try:
                server = self._connect()
            except OSError:
                client.close()
                continue
            with self.lock:
                if self.listener is not listener:  # stopped meanwhile
                    client.close()
                    server.close()
                    return
                self.sockets |= {client, server}
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _connect(self) -> socket.socket:
        if isinstance(self.upstream, str):
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(self.upstream)
            return sock
        return socket.create_connection(self.upstream)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
