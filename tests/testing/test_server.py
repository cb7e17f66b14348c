from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from pathlib import Path

import httpx
import pytest

from podidentity.testing._pki import CertificateAuthority
from podidentity.testing._server import ServerThread, TLSFiles


async def hello(scope: object, receive: object, send: object) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b"hello"})  # type: ignore[operator]


def test_one_thread_serves_many_apps_on_distinct_ports() -> None:
    with ServerThread() as thread:
        servers = [thread.serve_asgi(hello) for _ in range(3)]
        assert len({s.port for s in servers}) == 3
        assert all(httpx.get(s.url).text == "hello" for s in servers)
    with pytest.raises(httpx.ConnectError):
        httpx.get(servers[0].url)


def test_tls_with_the_generated_ca(tmp_path: Path) -> None:
    ca = CertificateAuthority()
    cert, key = ca.issue_server(["localhost", "127.0.0.1"]).write(tmp_path, "srv")
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    with ServerThread() as thread:
        server = thread.serve_asgi(hello, tls=TLSFiles(cert, key))
        assert server.url.startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
        assert httpx.get(server.url, verify=context).text == "hello"
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.url)  # the system trust store does not know our CA


def test_raw_tcp_servers_and_calls_run_on_the_serving_loop() -> None:
    async def upper(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write((await reader.readline()).upper())
        await writer.drain()
        writer.close()

    async def loop_name() -> str:
        return asyncio.get_running_loop().__class__.__name__

    with ServerThread() as thread:
        server = thread.serve_tcp(upper)

        async def talk() -> bytes:
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(b"ping\n")
            data = await reader.readline()
            writer.close()
            return data

        assert asyncio.run(talk()) == b"PING\n"
        assert thread.call(loop_name()).endswith("EventLoop")


def test_using_a_stopped_thread_says_what_to_do() -> None:
    thread = ServerThread()
    with pytest.raises(RuntimeError, match="call start"):
        thread.serve_asgi(hello)
    thread.stop()  # stopping a thread that never started is harmless


def test_stopping_with_open_raw_connections_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    entered = threading.Semaphore(0)

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        entered.release()
        await reader.read()  # blocks until the client or the server goes away

    thread = ServerThread()
    thread.start()
    server = thread.serve_tcp(hold)
    clients = [socket.create_connection((server.host, server.port)) for _ in range(3)]
    try:
        for _ in clients:
            assert entered.acquire(timeout=5)
        with caplog.at_level("ERROR", logger="asyncio"):
            thread.stop()
        # The server closed its side: each client reads end-of-stream.
        assert [c.recv(1) for c in clients] == [b"", b"", b""]
    finally:
        for client in clients:
            client.close()
    assert [r.getMessage() for r in caplog.records] == []


_Thread = threading.Thread  # the tests below replace threading.Thread


class _Stillborn(_Thread):
    """A thread that ends before running its target, as one does whose trace hook failed."""

    def run(self) -> None:
        return None


def _stillborn_first(count: int) -> object:
    made: list[threading.Thread] = []

    def make(*args: object, **kwargs: object) -> threading.Thread:
        kind = _Stillborn if len(made) < count else _Thread
        made.append(kind(*args, **kwargs))  # type: ignore[arg-type]
        return made[-1]

    return make


def test_a_thread_that_dies_before_its_loop_runs_is_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("podidentity.testing._server.threading.Thread", _stillborn_first(2))
    with ServerThread() as thread:
        assert httpx.get(thread.serve_asgi(hello).url).text == "hello"


def test_a_thread_that_never_runs_is_an_error_not_a_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("podidentity.testing._server.threading.Thread", _stillborn_first(99))
    thread = ServerThread("doomed")
    with pytest.raises(RuntimeError, match="'doomed' thread ended 3 times before it ran"):
        thread.start()
    with pytest.raises(RuntimeError, match="call start"):
        thread.loop  # noqa: B018 - the property raises
