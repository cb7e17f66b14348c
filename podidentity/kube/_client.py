"""A thin JSON client over ``kubernetes.aio``'s ``ApiClient``: plain dicts in and out.

The generated models cost seconds per 20,000 pods to deserialize, and the reconciler only reads
a handful of fields, so every call here returns the decoded JSON (``dict``). Authentication,
TLS, proxies and token refresh stay the official client's: requests go through its
``param_serialize`` / ``call_api``, exactly as its generated API methods do.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Literal

import aiohttp

from podidentity.errors import (
    KubeAlreadyExistsError,
    KubeConflictError,
    KubeError,
    KubeForbiddenError,
    KubeGoneError,
    KubeInvalidError,
    KubeNotFoundError,
    KubeUnavailableError,
)
from podidentity.kube._resources import ApiResource

__all__ = ["KubeClient", "PatchType", "kube_error"]

_log = logging.getLogger(__name__)

PatchType = Literal["merge", "json", "strategic", "apply"]
"""JSON merge patch, JSON patch, strategic merge patch (built-in kinds) or server-side apply."""
_PATCH_CONTENT = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}
_MAX_LINE = 64 * 1024 * 1024  # one watch event; the API server's own limit is far below


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    if not headers:
        return None
    value = headers.get("Retry-After")
    try:
        return None if value is None else max(0.0, float(value))
    except ValueError:
        return None


def kube_error(
    code: int, body: bytes | str | Mapping[str, Any] | None, *, what: str, headers: Any = None
) -> KubeError:
    """The :class:`~podidentity.errors.KubeError` subclass for an error answer.

    Args:
        code: the HTTP status (or the ``code`` of a watch ``ERROR`` event).
        body: the ``Status`` body, raw or decoded.
        what: the request, for the message (``GET pods default/x``).
        headers: response headers, for ``Retry-After``.
    """
    status: dict[str, Any] = {}
    if isinstance(body, Mapping):
        status = dict(body)
    elif body:
        try:
            decoded = json.loads(body)
            status = decoded if isinstance(decoded, dict) else {}
        except ValueError:
            status = {}
    reason = str(status.get("reason") or "")
    message = f"{what}: {code} {reason}: {status.get('message') or ''}".rstrip(": ")
    kwargs: dict[str, Any] = {"code": code, "reason": reason, "status": status}
    if code == 404:
        return KubeNotFoundError(message, **kwargs)
    if code == 409:
        if reason == "AlreadyExists":
            return KubeAlreadyExistsError(message, **kwargs)
        return KubeConflictError(message, **kwargs)
    if code == 410:
        return KubeGoneError(message, **kwargs)
    if code == 422:
        return KubeInvalidError(message, **kwargs)
    if code in (401, 403):
        return KubeForbiddenError(message, **kwargs)
    if code == 429 or code >= 500 or code == 0:
        return KubeUnavailableError(message, retry_after=_retry_after(headers), **kwargs)
    return KubeError(message, **kwargs)


class KubeClient:
    """JSON access to any API resource through an official ``kubernetes.aio`` ``ApiClient``.

    The caller owns ``api_client`` (configure and close it); this object adds no state.

    Args:
        api_client: a ``kubernetes.aio.client.ApiClient``.
        request_timeout: seconds for ordinary (non-watch) requests.
    """

    def __init__(self, api_client: Any, *, request_timeout: float = 30.0) -> None:
        self.api_client = api_client
        self.request_timeout = request_timeout

    async def _open(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, Any]] = (),
        body: Any = None,
        content_type: str = "application/json",
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> Any:
        """Send one request; return the official client's ``RESTResponse`` (body unread)."""
        api = self.api_client
        headers = {"Accept": "application/json", "Content-Type": content_type}
        _, url, headers, body, _ = await api.param_serialize(
            method,
            path,
            query_params=list(query) or None,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            return await api.call_api(
                method,
                url,
                header_params=headers,
                body=body,
                _request_timeout=timeout or aiohttp.ClientTimeout(total=self.request_timeout),
            )
        except (aiohttp.ClientError, TimeoutError) as err:
            raise KubeUnavailableError(f"{method} {path}: {type(err).__name__}: {err}") from err

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, Any]] = (),
        body: Any = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """Send one request and return the decoded JSON body.

        Raises:
            KubeError: the matching subclass for any status >= 400.
        """
        response = await self._open(method, path, query=query, body=body, content_type=content_type)
        try:
            data = await response.read()
        except (aiohttp.ClientError, TimeoutError) as err:
            raise KubeUnavailableError(f"{method} {path}: {type(err).__name__}") from err
        finally:
            response.response.release()
        if response.status >= 400:
            raise kube_error(
                response.status, data, what=f"{method} {path}", headers=response.headers
            )
        if not data:
            return {}
        decoded = json.loads(data)
        return decoded if isinstance(decoded, dict) else {"value": decoded}

    # -- verbs ---------------------------------------------------------------------------------

    async def get(
        self, resource: ApiResource, name: str, namespace: str | None = None
    ) -> dict[str, Any]:
        """GET one object."""
        return await self.request("GET", resource.path(namespace, name))

    async def list(
        self,
        resource: ApiResource,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        resource_version: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
    ) -> dict[str, Any]:
        """LIST a collection (one page when ``limit`` is given); the raw ``...List`` body."""
        query: list[tuple[str, Any]] = []
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        if resource_version is not None:
            query.append(("resourceVersion", resource_version))
        if limit is not None:
            query.append(("limit", limit))
        if continue_:
            query.append(("continue", continue_))
        return await self.request("GET", resource.path(namespace), query=query)

    async def create(
        self, resource: ApiResource, body: Mapping[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        """POST a new object."""
        return await self.request("POST", resource.path(namespace), body=dict(body))

    async def replace(
        self,
        resource: ApiResource,
        body: Mapping[str, Any],
        *,
        subresource: str = "",
    ) -> dict[str, Any]:
        """PUT an object (optimistic concurrency through its ``metadata.resourceVersion``)."""
        meta = body.get("metadata") or {}
        path = resource.path(meta.get("namespace"), meta["name"], subresource)
        return await self.request("PUT", path, body=dict(body))

    async def patch(
        self,
        resource: ApiResource,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: PatchType = "merge",
        subresource: str = "",
    ) -> dict[str, Any]:
        """PATCH an object or one of its subresources (``status``)."""
        return await self.request(
            "PATCH",
            resource.path(namespace, name, subresource),
            body=patch,
            content_type=_PATCH_CONTENT[patch_type],
        )

    async def delete(
        self,
        resource: ApiResource,
        name: str,
        namespace: str | None = None,
        *,
        uid: str | None = None,
    ) -> dict[str, Any]:
        """DELETE an object; with ``uid``, only that incarnation of it (a precondition)."""
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if uid:
            body["preconditions"] = {"uid": uid}
        return await self.request("DELETE", resource.path(namespace, name), body=body)

    async def watch(
        self,
        resource: ApiResource,
        namespace: str | None = None,
        *,
        resource_version: str,
        label_selector: str = "",
        field_selector: str = "",
        timeout_seconds: int = 300,
        bookmarks: bool = True,
    ) -> AsyncIterator[dict[str, Any]]:
        """Stream watch events (``{"type": ..., "object": {...}}``) until the server ends it.

        An ``ERROR`` event is raised as the matching :class:`KubeError` (410 →
        :class:`~podidentity.errors.KubeGoneError`). The stream simply ends when the server
        closes it (``timeoutSeconds``, restarts); resuming is the caller's job.
        """
        query: list[tuple[str, Any]] = [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("timeoutSeconds", timeout_seconds),
        ]
        if bookmarks:
            query.append(("allowWatchBookmarks", "true"))
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        path = resource.path(namespace)
        # The server ends the stream after timeoutSeconds; the client-side limit only catches a
        # connection that went silent (no bookmark, no event) for far longer than that.
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.request_timeout, sock_read=timeout_seconds + 60
        )
        response = await self._open("GET", path, query=query, timeout=timeout)
        try:
            if response.status >= 400:
                data = await response.read()
                raise kube_error(
                    response.status, data, what=f"WATCH {path}", headers=response.headers
                )
            buffer = b""
            try:
                async for chunk in response.response.content.iter_any():
                    buffer += chunk
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        if line.strip():
                            yield _decode_event(line, path)
                    if len(buffer) > _MAX_LINE:
                        raise KubeUnavailableError(f"WATCH {path}: event larger than 64 MiB")
            except (aiohttp.ClientError, TimeoutError) as err:
                raise KubeUnavailableError(f"WATCH {path}: {type(err).__name__}") from err
            if buffer.strip():
                yield _decode_event(buffer, path)
        finally:
            response.response.release()


def _decode_event(line: bytes, path: str) -> dict[str, Any]:
    try:
        event = json.loads(line)
    except ValueError as err:
        raise KubeUnavailableError(f"WATCH {path}: malformed event") from err
    if not isinstance(event, dict) or "type" not in event:
        raise KubeUnavailableError(f"WATCH {path}: event without a type")
    if event["type"] == "ERROR":
        obj = event.get("object") or {}
        raise kube_error(int(obj.get("code") or 500), obj, what=f"WATCH {path}")
    return event
