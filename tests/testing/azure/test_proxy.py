"""The host-routing CONNECT proxy: routing, refusals, half-close, concurrency, SDK behaviour."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ServiceRequestError
from azure.keyvault.secrets import SecretClient

from podidentity.testing._server import RunningServer, ServerThread
from podidentity.testing.azure._proxy import HostRoutingProxy, Route
from podidentity.testing.network_guard import guard


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echo every chunk; after the client's half-close, say goodbye and close."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.write(b"<bye>")
        await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread("proxy-tests") as thread:
        yield thread


@pytest.fixture(scope="module")
def echo(server: ServerThread) -> RunningServer:
    return server.serve_tcp(_echo)


@pytest.fixture(scope="module")
def other_echo(server: ServerThread) -> RunningServer:
    return server.serve_tcp(_echo)


@pytest.fixture
def proxy(server: ServerThread, echo: RunningServer) -> HostRoutingProxy:
    routing = HostRoutingProxy({"*.example.test": echo.port})
    routing.serve(server)
    return routing


async def _connect(
    proxy: HostRoutingProxy, target: str
) -> tuple[bytes, asyncio.StreamReader, asyncio.StreamWriter]:
    port = int(proxy.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    return head, reader, writer


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def _refusal(proxy: HostRoutingProxy, target: str) -> tuple[bytes, bytes]:
    head, reader, writer = await _connect(proxy, target)
    body = await asyncio.wait_for(reader.read(), 10)
    await _close(writer)
    return head, body


async def test_wildcard_route_tunnels_bytes_both_ways(proxy: HostRoutingProxy) -> None:
    head, reader, writer = await _connect(proxy, "MyVault.Example.TEST:443")
    assert head.startswith(b"HTTP/1.1 200 ")
    writer.write(b"ping")
    await writer.drain()
    assert await asyncio.wait_for(reader.readexactly(4), 10) == b"ping"
    await _close(writer)
    [record] = proxy.log.records
    assert (record.host, record.port, record.allowed, record.status) == (
        "myvault.example.test",
        443,
        True,
        200,
    )


async def test_half_close_reaches_the_server_and_its_answer_comes_back(
    proxy: HostRoutingProxy,
) -> None:
    _, reader, writer = await _connect(proxy, "a.example.test:443")
    writer.write(b"last words")
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), 10) == b"last words<bye>"
    await _close(writer)


async def test_unknown_host_is_refused_with_403_naming_host_and_routes(
    proxy: HostRoutingProxy,
) -> None:
    head, body = await _refusal(proxy, "evil.example.com:443")
    assert head.startswith(b"HTTP/1.1 403 Forbidden")
    text = body.decode()
    assert "evil.example.com" in text
    assert "*.example.test -> 127.0.0.1:" in text
    assert proxy.log.hosts(allowed=False) == ["evil.example.com"]


async def test_the_bare_suffix_is_not_under_its_own_wildcard(proxy: HostRoutingProxy) -> None:
    head, _ = await _refusal(proxy, "example.test:443")
    assert head.startswith(b"HTTP/1.1 403")


async def test_only_port_443_is_routed(proxy: HostRoutingProxy) -> None:
    head, body = await _refusal(proxy, "a.example.test:22")
    assert head.startswith(b"HTTP/1.1 403")
    assert b"only port 443" in body


async def test_plain_http_proxying_is_refused_with_405(proxy: HostRoutingProxy) -> None:
    port = int(proxy.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET http://a.example.test/ HTTP/1.1\r\nHost: a.example.test\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 10)
    await _close(writer)
    assert answer.startswith(b"HTTP/1.1 405 Method Not Allowed")
    assert b"Allow: CONNECT" in answer
    assert b"only tunnels HTTPS" in answer
    assert len(proxy.log) == 0


async def test_exact_route_wins_over_wildcard_and_routes_change_at_runtime(
    proxy: HostRoutingProxy, other_echo: RunningServer
) -> None:
    proxy.add_route("special.example.test", other_echo.port)
    _, _reader, writer = await _connect(proxy, "special.example.test:443")
    await _close(writer)
    assert proxy.log.records[-1].target_port == other_echo.port
    proxy.remove_route("*.example.test")
    head, _ = await _refusal(proxy, "plain.example.test:443")
    assert head.startswith(b"HTTP/1.1 403")
    assert proxy.routes == {"special.example.test": other_echo.port}


async def test_longest_wildcard_wins(proxy: HostRoutingProxy, other_echo: RunningServer) -> None:
    proxy.add_route("*.deep.example.test", other_echo.port)
    assert proxy.route_for("x.deep.example.test") == Route("*.deep.example.test", other_echo.port)
    assert proxy.route_for("x.example.test") is not None
    assert proxy.route_for("x.example.test").port != other_echo.port  # type: ignore[union-attr]


async def test_only_if_false_answers_502_like_an_unresolvable_name(
    proxy: HostRoutingProxy, echo: RunningServer
) -> None:
    proxy.add_route("*.example.test", echo.port, only_if=lambda host: host.startswith("known."))
    head, body = await _refusal(proxy, "unknown.example.test:443")
    assert head.startswith(b"HTTP/1.1 502")
    assert b"does not resolve" in body
    head, _, writer = await _connect(proxy, "known.example.test:443")
    await _close(writer)
    assert head.startswith(b"HTTP/1.1 200")


async def test_a_dead_emulator_port_answers_502(proxy: HostRoutingProxy) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]  # nothing listens here once the probe closes
    proxy.add_route("gone.example.test", dead_port)
    head, body = await _refusal(proxy, "gone.example.test:443")
    assert head.startswith(b"HTTP/1.1 502")
    assert b"refused the connection" in body


async def test_concurrent_tunnels_keep_their_streams_apart(proxy: HostRoutingProxy) -> None:
    async def one(index: int) -> bytes:
        _, reader, writer = await _connect(proxy, f"tenant{index}.example.test:443")
        payload = f"payload-{index}-".encode() * 200
        writer.write(payload)
        writer.write_eof()
        answer = await asyncio.wait_for(reader.read(), 10)
        await _close(writer)
        return answer[: -len(b"<bye>")] if answer.endswith(b"<bye>") else b"broken"

    answers = await asyncio.gather(*(one(i) for i in range(25)))
    assert answers == [f"payload-{i}-".encode() * 200 for i in range(25)]
    assert len(proxy.log.hosts(allowed=True)) == 25


async def test_client_vanishing_mid_tunnel_leaves_the_proxy_working(
    proxy: HostRoutingProxy,
) -> None:
    _, reader, writer = await _connect(proxy, "flaky.example.test:443")
    writer.write(b"half a message")
    await writer.drain()
    writer.transport.abort()
    _head, reader, writer = await _connect(proxy, "steady.example.test:443")
    writer.write(b"ok")
    assert await asyncio.wait_for(reader.readexactly(2), 10) == b"ok"
    await _close(writer)


async def test_a_client_that_says_nothing_and_leaves_is_fine(proxy: HostRoutingProxy) -> None:
    port = int(proxy.url.rsplit(":", 1)[1])
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"CONNECT half")
    await writer.drain()
    await _close(writer)
    head, _, writer = await _connect(proxy, "after.example.test:443")
    await _close(writer)
    assert head.startswith(b"HTTP/1.1 200")


def test_route_patterns_are_validated() -> None:
    routing = HostRoutingProxy()
    with pytest.raises(ValueError, match="host name or"):
        routing.add_route("evil.*.com", 443)
    with pytest.raises(ValueError, match="TCP port"):
        routing.add_route("*.ok.test", 0)
    with pytest.raises(RuntimeError, match="not serving"):
        _ = routing.url


def test_sdk_call_to_an_unrouted_host_fails_and_nothing_leaves_the_machine(
    proxy: HostRoutingProxy, ca_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    before = len(guard.violations)

    class NoToken:
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            raise AssertionError("the request must fail before any token is needed")

    client = SecretClient(
        "https://evil.example.com", NoToken(), connection_verify=ca_file, retry_total=0
    )
    with pytest.raises(ServiceRequestError):
        client.get_secret("anything")
    client.close()
    assert proxy.log.hosts() == ["evil.example.com"]
    assert not proxy.log.records[0].allowed
    assert len(guard.violations) == before


@pytest.fixture
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    from podidentity.testing._pki import CertificateAuthority

    path = tmp_path_factory.mktemp("proxy-ca") / "ca.pem"
    path.write_bytes(CertificateAuthority().cert_pem)
    return str(path)
