from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from podidentity.testing._asgi import Scope
from podidentity.testing._faults import FaultInjector, RequestLog, with_faults
from podidentity.testing._server import RunningServer, ServerThread


async def echo_app(scope: Scope, receive: object, send: object) -> None:
    body = json.dumps({"path": scope["path"]}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": body})  # type: ignore[operator]


def error_body(status: int, message: str) -> tuple[bytes, str]:
    return json.dumps(
        {"error": {"code": str(status), "message": message}}
    ).encode(), "application/json"


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    """One client for the module: building one per request (``httpx.get``) costs ~50 ms."""
    with httpx.Client() as client:
        yield client


@pytest.fixture
def served() -> Iterator[tuple[RunningServer, FaultInjector, RequestLog]]:
    faults, log = FaultInjector(), RequestLog()
    app = with_faults(
        echo_app,
        faults=faults,
        log=log,
        error_body=error_body,
        controls={"hello": lambda spec: {"got": dict(spec)}},
    )
    with ServerThread() as thread:
        yield thread.serve_asgi(app), faults, log


def test_next_n_requests_fail_then_service_resumes(
    served: tuple[RunningServer, FaultInjector, RequestLog],
) -> None:
    server, faults, log = served
    faults.fail_next(2, status=429, retry_after=3, path="^/pods")
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/nodes").status_code == 200
        first, second, third = (client.get("/pods") for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (429, 429, 200)
    assert first.headers["retry-after"] == "3"
    assert first.json() == {"error": {"code": "429", "message": "injected fault"}}
    assert [r.status for r in log.find(path="^/pods")] == [429, 429, 200]


def test_a_reset_drops_the_connection(
    served: tuple[RunningServer, FaultInjector, RequestLog],
    http: httpx.Client,
) -> None:
    server, faults, _ = served
    faults.reset_next(method="GET")
    with pytest.raises(httpx.RemoteProtocolError):
        http.get(server.url + "/x")
    assert http.get(server.url + "/x").status_code == 200


def test_rules_only_match_their_method_and_path(
    served: tuple[RunningServer, FaultInjector, RequestLog],
    http: httpx.Client,
) -> None:
    server, faults, _ = served
    faults.fail_next(1, status=500, method="POST", path="/a$")
    assert http.get(server.url + "/a").status_code == 200
    assert http.post(server.url + "/b").status_code == 200
    assert http.post(server.url + "/a").status_code == 500


def test_http_controls_add_and_clear_rules(
    served: tuple[RunningServer, FaultInjector, RequestLog],
) -> None:
    server, _, log = served
    with httpx.Client(base_url=server.url) as client:
        added = client.post("/_emulator/faults", json={"action": "fail", "status": 503, "count": 0})
        assert added.json() == {"ok": True}
        assert client.get("/x").status_code == 503
        assert client.get("/x").status_code == 503
        client.delete("/_emulator/faults")
        assert client.get("/x").status_code == 200
        assert client.post("/_emulator/hello", json={"a": 1}).json() == {"got": {"a": 1}}
        bad = client.post("/_emulator/faults", json={"action": "explode"})
        assert bad.status_code == 400
        assert "unknown fault action" in bad.json()["error"]
        assert client.get("/_emulator/nothing").status_code == 404
        recorded = client.get("/_emulator/requests").json()
    # Control requests are not recorded; only the three /x requests are.
    assert [r["path"] for r in recorded] == ["/x", "/x", "/x"]
    assert len(log) == 3


def test_credentials_are_masked_in_the_log(
    served: tuple[RunningServer, FaultInjector, RequestLog],
    http: httpx.Client,
) -> None:
    server, _, log = served
    http.get(server.url + "/x", headers={"Authorization": "Bearer secret-token-value"})
    assert log.records[-1].headers["authorization"] == "****"
    assert "secret-token-value" not in repr(log.records)


def test_latency_and_pause(
    served: tuple[RunningServer, FaultInjector, RequestLog], http: httpx.Client
) -> None:
    server, faults, log = served
    faults.add_latency(0.05, path="/slow", count=1)
    assert http.get(server.url + "/slow").status_code == 200
    assert log.records[-1].duration >= 0.05
    faults.pause()
    assert faults.paused
    with pytest.raises(httpx.ReadTimeout):
        http.get(server.url + "/held", timeout=0.2)
    faults.resume()
    assert http.get(server.url + "/held").status_code == 200


def test_an_unlimited_rule_can_be_withdrawn() -> None:
    faults = FaultInjector()
    rule = faults.fail_next(0, status=500)
    assert faults.take("GET", "/x")[1] is rule
    assert faults.take("GET", "/x")[1] is rule
    faults.remove(rule)
    assert faults.take("GET", "/x") == (0.0, None)


def test_a_request_is_in_the_log_as_soon_as_its_answer_arrives(
    served: tuple[RunningServer, FaultInjector, RequestLog],
) -> None:
    server, faults, log = served
    faults.fail_next(1, status=503, path="/failing")
    with httpx.Client(base_url=server.url) as client:
        for index in range(50):
            path = "/failing" if index == 0 else f"/ok/{index}"
            client.get(path)
            # No waiting: the record must already be there when the client has its answer.
            assert log.records[-1].path == path
    assert log.records[0].status == 503


def test_rules_can_match_on_the_query_string(
    served: tuple[RunningServer, FaultInjector, RequestLog],
) -> None:
    server, faults, log = served
    faults.fail_next(1, status=500, path="/pods$", query="(^|&)watch=true(&|$)")
    faults.reset_next(1, path="/nodes$", query="limit=")
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/pods").status_code == 200
        assert client.get("/pods", params={"limit": "5"}).status_code == 200
        assert client.get("/pods", params={"watch": "true"}).status_code == 500
        assert client.get("/pods", params={"watch": "true"}).status_code == 200
        assert client.get("/nodes").status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/nodes", params={"limit": "1"})
    assert log.records[2].query == "watch=true"


def test_take_without_a_query_still_matches_rules_without_one() -> None:
    faults = FaultInjector()
    plain = faults.fail_next(1, status=500, path="/x")
    assert faults.take("GET", "/x") == (0.0, plain)
    queried = faults.configure({"action": "fail", "status": 429, "query": "^watch=1$"})
    assert faults.take("GET", "/x") == (0.0, None)
    assert faults.take("GET", "/x", query="watch=1") == (0.0, queried)
