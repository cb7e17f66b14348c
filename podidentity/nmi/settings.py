"""Settings of the node token proxy: :class:`TokenProxySettings`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

from podidentity.errors import ConfigError

__all__ = ["DEFAULT_SERVICE_ACCOUNT_AUDIENCE", "TokenProxySettings"]

DEFAULT_SERVICE_ACCOUNT_AUDIENCE = "podidentity-nmi"
"""The audience a pod's projected service-account token must carry to prove who it is."""


def _label_pairs(
    value: Mapping[str, str] | Iterable[tuple[str, str]],
) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(dict(value).items()))


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"TokenProxySettings.{name} must be positive, got {value!r}")


@attrs.frozen(kw_only=True)
class TokenProxySettings:
    """How one node's token proxy treats its callers. Defaults are the secure ones.

    Attributes:
        metadata_header_required: refuse token requests without ``Metadata: true`` (as IMDS
            does; the header keeps a server-side request forgery from reaching the proxy).
        block_instance_metadata: answer ``/metadata/instance`` with 403 instead of forwarding
            it to the node's IMDS (it reveals the node's subscription, resource group, VM).
        require_service_account_token: callers must prove which pod they are with
            ``Authorization: Bearer <projected service-account token>``; the source address
            alone is not enough (defeats IP spoofing by a pod with ``NET_RAW``).
        pending_timeout: seconds a request waits for the pod's identity to become usable
            (assignment in flight) before the "not yet" answer.
        service_account_audience: the audience a caller's service-account token must have.
        request_deadline: seconds one request may spend on upstream calls and retries.
        pending_retry_after: the ``Retry-After`` (seconds) of the "not yet" answer.
        cache_size: the most cached tokens (least recently used go first).
        refresh_ahead: refresh a cached token this many seconds before it expires.
        refresh_jitter: up to this many more seconds earlier, at random per token, so tokens
            issued together are not all refreshed together.
        host_addresses: source addresses that are the node itself (allowed ``/host/token``).
        controller_namespace: the namespace of the controller's own pods.
        controller_labels: labels that mark the controller's own pods (all must match); such
            pods in :attr:`controller_namespace` get the node's identities, like exception
            pods. Empty: no pod is the controller.
        cluster_wide_bindings: serve pods the identities that a controller running with
            ``ControllerSettings(cluster_wide_bindings=True)`` assigned them from bindings in
            other namespaces (upstream's old behaviour, for migration only; set both or
            neither). Default: pod, binding and identity share a namespace.
    """

    metadata_header_required: bool = True
    block_instance_metadata: bool = False
    require_service_account_token: bool = False
    pending_timeout: float = 60.0
    service_account_audience: str = DEFAULT_SERVICE_ACCOUNT_AUDIENCE
    request_deadline: float = 20.0
    pending_retry_after: int = 5
    cache_size: int = 4096
    refresh_ahead: float = 300.0
    refresh_jitter: float = 60.0
    host_addresses: tuple[str, ...] = attrs.field(default=("127.0.0.1", "::1"), converter=tuple)
    controller_namespace: str = "kube-system"
    controller_labels: tuple[tuple[str, str], ...] = attrs.field(
        default=(("app.kubernetes.io/component", "podidentity-controller"),),
        converter=_label_pairs,
    )
    cluster_wide_bindings: bool = False

    def __attrs_post_init__(self) -> None:
        _positive("pending_timeout", self.pending_timeout)
        _positive("request_deadline", self.request_deadline)
        if self.cache_size < 1:
            raise ConfigError(f"TokenProxySettings.cache_size must be >= 1, got {self.cache_size}")
        if self.refresh_ahead < 0 or self.refresh_jitter < 0:
            raise ConfigError("TokenProxySettings.refresh_ahead and refresh_jitter must be >= 0")
        if self.pending_retry_after < 1:
            raise ConfigError("TokenProxySettings.pending_retry_after must be >= 1 second")
        if not self.service_account_audience:
            raise ConfigError("TokenProxySettings.service_account_audience may not be empty")
