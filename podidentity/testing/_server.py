"""Run ASGI apps and raw TCP servers on 127.0.0.1 from an event loop in a background thread.

The emulators always serve from their own thread, whether the test is sync or async: a sync
client can then call them without blocking the loop that serves it, and an async test's loop is
never shared with the server (a test that blocks its loop cannot stall the emulator). One
:class:`ServerThread` hosts any number of servers, so an emulated world with many endpoints
(an IMDS per node) costs one thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import attrs
import uvicorn

__all__ = ["RunningServer", "ServerThread", "TLSFiles", "start_daemon"]

_T = TypeVar("_T")
_START_ATTEMPTS = 3
ASGIApp = Callable[..., Awaitable[None]]
StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

# uvicorn logs a traceback when an app aborts a response on purpose (the "connection reset"
# fault); the emulators record their own requests, so keep uvicorn's logs to real trouble.
logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)


@attrs.frozen
class TLSFiles:
    """A server certificate chain and key on disk, as uvicorn and ``ssl`` want them."""

    cert_file: Path
    key_file: Path


@attrs.frozen
class RunningServer:
    """Where a started server listens."""

    host: str
    port: int
    scheme: str

    @property
    def url(self) -> str:
        """``scheme://host:port`` with no trailing slash."""
        return f"{self.scheme}://{self.host}:{self.port}"


def _bind(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto is
    # IPPROTO_TCP, and without it a response written as headers + body waits ~40 ms for the
    # client's delayed ACK (Nagle) on every request.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def start_daemon(target: Callable[[], object], name: str) -> threading.Thread:
    """Start ``target`` in a daemon thread; return once it runs.

    A thread can die before running anything: on Python 3.11 under a tracer (coverage with
    threads), two threads installing their trace function at once make one of them fail inside
    ``threading`` (CPython issue 98257). Whoever then waits for that thread to signal would hang
    until a timeout; this notices the death and starts another thread (the target never ran).
    """
    for _ in range(_START_ATTEMPTS):
        began = threading.Event()

        def begin(began: threading.Event = began) -> None:
            began.set()
            target()

        thread = threading.Thread(target=begin, name=name, daemon=True)
        thread.start()
        while not began.wait(0.01):
            if not thread.is_alive():
                break
        if began.is_set():
            return thread
    raise RuntimeError(f"the {name!r} thread ended {_START_ATTEMPTS} times before it ran")


class ServerThread:
    """An asyncio loop in a daemon thread that serves emulator endpoints.

    Use :meth:`start` / :meth:`stop` (or ``with``); :meth:`serve_asgi` and :meth:`serve_tcp`
    may be called from any thread once started.
    """

    def __init__(self, name: str = "podidentity-emulator") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._uvicorn: list[uvicorn.Server] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._tcp: list[asyncio.AbstractServer] = []
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The serving loop (only valid between :meth:`start` and :meth:`stop`)."""
        if self._loop is None:
            raise RuntimeError("the server thread is not running; call start() first")
        return self._loop

    def start(self) -> None:
        """Start the loop thread; returns once the loop runs."""
        if self._thread is not None:
            return
        ready = threading.Event()
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()
            loop.close()

        self._loop = loop
        try:
            self._thread = start_daemon(run, self._name)
        except BaseException:
            loop.close()
            self._loop = None
            raise
        ready.wait()

    def call(self, coro: Coroutine[Any, Any, _T], timeout: float | None = 30.0) -> _T:
        """Run a coroutine on the serving loop from another thread and return its result."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Schedule a plain callback on the serving loop (thread-safe)."""
        self.loop.call_soon_threadsafe(callback)

    def serve_asgi(
        self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0, tls: TLSFiles | None = None
    ) -> RunningServer:
        """Serve an ASGI app with uvicorn on ``host:port`` (0: a free port)."""
        self.loop  # noqa: B018 - fail before binding a socket that would then leak
        sock = _bind(host, port)
        bound_port = sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_level="critical",
            access_log=False,
            timeout_graceful_shutdown=1,
            timeout_keep_alive=30,
            ssl_certfile=str(tls.cert_file) if tls else None,
            ssl_keyfile=str(tls.key_file) if tls else None,
            server_header=False,
        )
        server = uvicorn.Server(config)
        started = threading.Event()

        async def serve() -> None:
            task = asyncio.ensure_future(server.serve(sockets=[sock]))
            self._tasks.append(task)
            while not server.started and not task.done():
                await asyncio.sleep(0.005)
            started.set()
            if task.done():
                task.result()

        self._uvicorn.append(server)
        self.call(serve())
        started.wait()
        return RunningServer(host=host, port=bound_port, scheme="https" if tls else "http")

    def serve_tcp(
        self, handler: StreamHandler, *, host: str = "127.0.0.1", port: int = 0
    ) -> RunningServer:
        """Serve a raw stream handler (used by the CONNECT proxy) on ``host:port``."""
        self.loop  # noqa: B018 - fail before binding a socket that would then leak
        sock = _bind(host, port)

        async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._writers.add(writer)
            try:
                await handler(reader, writer)
            except asyncio.CancelledError:
                # stop() cancels open connections. A stream handler task that ends cancelled
                # makes asyncio (3.11) log a traceback from its done-callback, so end quietly.
                writer.transport.abort()
            finally:
                self._writers.discard(writer)

        async def start() -> asyncio.AbstractServer:
            return await asyncio.start_server(guarded, sock=sock)

        server = self.call(start())
        self._tcp.append(server)
        return RunningServer(host=host, port=sock.getsockname()[1], scheme="tcp")

    def stop(self) -> None:
        """Stop every server, cancel open streams (watches) and end the thread."""
        if self._thread is None or self._loop is None:
            return
        loop = self._loop

        async def shutdown() -> None:
            current = asyncio.current_task()
            for tcp in self._tcp:
                tcp.close()
            # Close raw connections at the transport first: a handler task cancelled while
            # its transport is open would leave the socket to the garbage collector.
            for writer in list(self._writers):
                writer.transport.abort()
            # uvicorn's own shutdown notices ``should_exit`` on a 0.1 s tick and then sleeps
            # another 0.1 s before closing: a stop took ~200 ms, most of a short test. Cancel
            # its serve tasks instead and close what they opened here, without waiting.
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for server in self._uvicorn:
                for listener in server.servers:
                    listener.close()
                # Watches never end by themselves: abort every connection so no transport
                # outlives the loop.
                for connection in list(server.server_state.connections):
                    transport = getattr(connection, "transport", None)
                    if transport is not None:
                        transport.abort()
            for _ in range(10):
                # A connection accepted just before close() is set up by an asyncio task that
                # owns the socket only once it has run: let queued callbacks and first steps
                # run before cancelling anything, or the socket would leak to the GC.
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                pending = [t for t in asyncio.all_tasks() if t is not current]
                if not pending:
                    break
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)

        try:
            self.call(shutdown(), timeout=15)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout=15)
            self._thread = None
            self._loop = None
            self._uvicorn.clear()
            self._tasks.clear()
            self._tcp.clear()
            self._writers.clear()

    def __enter__(self) -> ServerThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def client_ssl_context(ca_file: Path) -> ssl.SSLContext:
    """An SSL context that trusts only the emulator CA (for hand-rolled clients in tests)."""
    return ssl.create_default_context(cafile=str(ca_file))
