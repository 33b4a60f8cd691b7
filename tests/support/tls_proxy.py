"""A TLS-terminating TCP proxy: clients speak TLS to it, it speaks plain TCP to the server behind.

Used to put TLS in front of the test broker, which has none of its own; the certificate
comes from a throwaway CA (trustme).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field


@dataclass
class ProxyStats:
    handshakes: int = 0
    """Client connections that completed a TLS handshake."""
    lock: threading.Lock = field(default_factory=threading.Lock)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        with suppress(Exception):
            writer.close()


@contextmanager
def tls_proxy(listen_port: int, target_port: int, context: ssl.SSLContext) -> Iterator[ProxyStats]:
    """Accepts TLS on 127.0.0.1:`listen_port` and forwards each connection to 127.0.0.1:`target_port`."""
    stats = ProxyStats()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    server_box: list[asyncio.Server] = []

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        with stats.lock:
            stats.handshakes += 1
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, server_writer), _pipe(server_reader, client_writer))

    async def serve() -> None:
        server_box.append(await asyncio.start_server(handle, "127.0.0.1", listen_port, ssl=context))
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(serve()), loop.run_forever()), daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("the TLS proxy did not start")
    try:
        yield stats
    finally:

        async def stop() -> None:
            server_box[0].close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
