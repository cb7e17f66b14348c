"""The emulators' shared HTTP vocabulary: the request, the error boundary, answer-wide headers."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from podidentity.testing._asgi import Receive, Scope, Send
from podidentity.testing._http import (
    HTTPError,
    Request,
    Response,
    error_boundary,
    read_request,
    send_response,
)
from podidentity.testing._server import ServerThread


class _Teapot(HTTPError):
    """A service's own error shape, for the test."""

    def __init__(self, why: str) -> None:
        super().__init__(418, why)
        self.why = why

    def response(self) -> Response:
        body = json.dumps({"teapot": self.why}).encode()
        return Response(self.status, body, "application/teapot+json", (("Retry-After", "7"),))


seen: list[Request] = []


async def _echo(scope: Scope, receive: Receive, send: Send) -> None:
    request = await read_request(scope, receive)
    seen.append(request)
    if request.path == "/refuse":
        raise _Teapot("short and stout")
    if request.path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
        raise _Teapot("mid-stream")
    echoed = {
        "query": dict(request.query),
        "all": request.query_values("a"),
        "form": request.form() if request.method == "POST" else None,
        "token": request.bearer_token(),
        "host": request.host,
    }
    await send_response(send, Response(200, json.dumps(echoed).encode(), "application/json"))


_app = error_boundary(_echo, headers=lambda scope: [(b"x-service", b"emulated")])


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with ServerThread("http-tests") as thread:
        yield thread.serve_asgi(_app).url


def test_the_first_of_repeated_query_values_wins_and_all_stay_readable(url: str) -> None:
    answer = httpx.post(
        f"{url}/echo?a=1&b=&a=2",
        content=b"x=first&x=second",
        headers={
            "Authorization": "Bearer abc",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    ).json()
    assert answer["query"] == {"a": "1", "b": ""}
    assert answer["all"] == ["1", "2"]
    assert answer["form"] == {"x": "first"}
    assert answer["token"] == "abc"
    assert answer["host"] == url.removeprefix("http://")


def test_an_error_is_answered_in_its_services_shape_with_the_answer_wide_headers(
    url: str,
) -> None:
    answer = httpx.get(f"{url}/refuse")
    assert answer.status_code == 418
    assert answer.headers["content-type"] == "application/teapot+json"
    assert answer.json() == {"teapot": "short and stout"}
    assert answer.headers["retry-after"] == "7"
    assert answer.headers["x-service"] == "emulated"


def test_an_error_after_the_answer_started_ends_it_without_a_second_start(url: str) -> None:
    answer = httpx.get(f"{url}/stream")
    assert answer.status_code == 200
    assert answer.text == "first\n"
    # The server is still healthy.
    assert httpx.get(f"{url}/echo").status_code == 200


def test_a_requests_repr_leaves_out_its_credentials(url: str) -> None:
    httpx.post(f"{url}/echo", content=b"secret=s3cr3t", headers={"Authorization": "Bearer t0ken"})
    request = seen[-1]
    assert repr(request) == "Request(POST /echo)"
    assert request.client is not None
    assert request.client[0] == "127.0.0.1"
    assert request.bearer_token() == "t0ken"
    assert ("authorization", "Bearer t0ken") in request.headers.items()
    assert request.raw_headers  # as received
