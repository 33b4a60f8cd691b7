"""A TCP proxy between an orchestrator and PostgreSQL that can make a commit's outcome unknowable.

Armed, it forwards the next COMMIT to the server, waits for the server's answer,
drops that answer and closes both sides: the transaction is committed, and the
client only learns that its connection broke. That is the ambiguous commit of
the contract's HTTP API section (`POST /api/orders`: 503 only when nothing was
written, 504 when the outcome cannot be learned).

PostgreSQL's simple query protocol (what psycopg2 sends): a 'Q' message, its
length, the SQL text and a NUL. A saga insert is seen by its SQL text.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

COMMIT_QUERY = b"Q\x00\x00\x00\x0bCOMMIT\x00"
SAGA_INSERT = b"INSERT INTO sagas"
CHUNK = 65536


@dataclass(eq=False)
class _Link:
    client: socket.socket
    server: socket.socket
    saga_insert_seen: bool = False
    cutting: bool = False
    closed: threading.Event = field(default_factory=threading.Event)

    def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for sock in (self.client, self.server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class CommitCuttingProxy:
    """Listens on 127.0.0.1:`listen_port` and forwards to the target (a TCP port or a Unix socket)."""

    def __init__(self, listen_port: int, target: int | str) -> None:
        """`target`: a TCP port on 127.0.0.1, or the path of PostgreSQL's Unix socket."""
        self.listen_port = listen_port
        self.target = target
        self.refusing = threading.Event()
        """While set, new connections are closed at once (the database looks down)."""
        self._lock = threading.Lock()
        self._armed: list[bool] = []
        """One entry per cut to make: True cuts only a transaction that inserted a saga."""
        self.cuts = 0
        self.saga_insert_cuts = 0
        self._listener: socket.socket | None = None
        self._links: set[_Link] = set()
        self._stop = threading.Event()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.listen_port))
        listener.listen(64)
        listener.settimeout(0.2)
        self._listener = listener
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def arm(self, saga_insert_only: bool) -> None:
        """Cuts the next COMMIT (with `saga_insert_only`, the next one of a transaction that inserted a saga)."""
        with self._lock:
            self._armed.append(saga_insert_only)

    def pending(self) -> int:
        with self._lock:
            return len(self._armed)

    def stop(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            links = list(self._links)
        for link in links:
            link.close()

    def _accept(self) -> None:
        if self._listener is None:
            raise RuntimeError("the proxy accepts only after start()")
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.refusing.is_set():
                client.close()
                continue
            try:
                server = self._connect()
            except OSError:
                client.close()  # the server is down: the client sees its connection refused
                continue
            link = _Link(client, server)
            with self._lock:
                self._links.add(link)
            threading.Thread(target=self._upstream, args=(link,), name="proxy-up", daemon=True).start()
            threading.Thread(target=self._downstream, args=(link,), name="proxy-down", daemon=True).start()

    def _connect(self) -> socket.socket:
        if isinstance(self.target, str):
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.settimeout(2)
            server.connect(self.target)
        else:
            server = socket.create_connection(("127.0.0.1", self.target), timeout=2)
        server.settimeout(None)
        return server

    def _take_cut(self, link: _Link) -> bool:
        with self._lock:
            for index, saga_insert_only in enumerate(self._armed):
                if not saga_insert_only or link.saga_insert_seen:
                    del self._armed[index]
                    self.cuts += 1
                    self.saga_insert_cuts += int(link.saga_insert_seen)
                    return True
        return False

    def _upstream(self, link: _Link) -> None:
        try:
            while not link.closed.is_set():
                data = link.client.recv(CHUNK)
                if not data:
                    break
                if SAGA_INSERT in data:
                    link.saga_insert_seen = True
                if COMMIT_QUERY in data:
                    if self._take_cut(link):
                        # The answer to this COMMIT is dropped by _downstream, which then closes both sides.
                        link.cutting = True
                        log.info("proxy: cutting a connection after its COMMIT")
                    link.saga_insert_seen = False
                link.server.sendall(data)
        except OSError:
            pass
        finally:
            if not link.cutting:
                self._forget(link)

    def _downstream(self, link: _Link) -> None:
        try:
            while not link.closed.is_set():
                data = link.server.recv(CHUNK)
                if not data or link.cutting:
                    break
                link.client.sendall(data)
        except OSError:
            pass
        finally:
            self._forget(link)

    def _forget(self, link: _Link) -> None:
        link.close()
        with self._lock:
            self._links.discard(link)
