"""Deliver outputs into a Kubernetes Secret, created or updated, with an optional owner.

The Kubernetes API is reached through a small protocol that the official client's
``kubernetes.client.CoreV1Api`` satisfies as it is, so this engine needs no Kubernetes layer of
its own. A Secret that exists but was not created by podidentity (no
``app.kubernetes.io/managed-by: podidentity`` label) is never overwritten: a spec must not be
able to clobber another application's credentials.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Mapping
from typing import Any, Protocol

from podidentity.errors import (
    KubeConflictError,
    KubeError,
    KubeForbiddenError,
    KubeNotFoundError,
    ValidationError,
)
from podidentity.keyvault._core import Output
from podidentity.models import OwnerReference

__all__ = ["MANAGED_BY", "KubernetesSecretSink", "SecretsApi"]

logger = logging.getLogger("podidentity.keyvault")

MANAGED_BY = ("app.kubernetes.io/managed-by", "podidentity")
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+\Z")


class SecretsApi(Protocol):
    """The calls the sink makes; ``kubernetes.client.CoreV1Api`` has them."""

    def read_namespaced_secret(self, name: str, namespace: str) -> Any:
        """GET the Secret."""

    def create_namespaced_secret(self, namespace: str, body: Any) -> Any:
        """POST a Secret."""

    def replace_namespaced_secret(self, name: str, namespace: str, body: Any) -> Any:
        """PUT the Secret (with its resourceVersion: a conflict means it changed meanwhile)."""


class KubernetesSecretSink:
    """Writes outputs as the keys of one Kubernetes Secret.

    Args:
        api: a ``kubernetes.client.CoreV1Api`` (or anything with its three Secret calls).
        namespace: the Secret's namespace.
        name: the Secret's name.
        owner: an owner reference (the pod or its Deployment), so the Secret is garbage
            collected with it.
        secret_type: the Secret's ``type`` (``Opaque``; ``kubernetes.io/tls`` with the keys
            ``tls.crt`` and ``tls.key``).
        labels: extra labels.
    """

    def __init__(
        self,
        api: SecretsApi,
        namespace: str,
        name: str,
        *,
        owner: OwnerReference | None = None,
        secret_type: str = "Opaque",  # noqa: S107 - a Secret type, not a password
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.owner = owner
        self.secret_type = secret_type
        self.labels = dict(labels or {})

    def __repr__(self) -> str:
        return f"KubernetesSecretSink({self.namespace}/{self.name})"

    def body(
        self, outputs: Mapping[str, Output], resource_version: str | None = None
    ) -> dict[str, Any]:
        """The Secret to write (values base64-encoded, as the API wants them)."""
        data: dict[str, str] = {}
        for key, output in outputs.items():
            if not _SECRET_KEY.match(key):
                raise ValidationError(
                    "alias",
                    f"{key!r} is not a valid Secret key (letters, digits, '-', '_', '.')",
                    obj=output.object.label,
                )
            data[key] = base64.b64encode(output.data).decode("ascii")
        metadata: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "labels": {**self.labels, MANAGED_BY[0]: MANAGED_BY[1]},
        }
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        if self.owner is not None:
            reference: dict[str, Any] = {
                "apiVersion": self.owner.api_version,
                "kind": self.owner.kind,
                "name": self.owner.name,
                "uid": self.owner.uid,
            }
            if self.owner.controller is not None:
                reference["controller"] = self.owner.controller
            if self.owner.block_owner_deletion is not None:
                reference["blockOwnerDeletion"] = self.owner.block_owner_deletion
            metadata["ownerReferences"] = [reference]
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": metadata,
            "type": self.secret_type,
            "data": data,
        }

    def write(self, outputs: Mapping[str, Output]) -> None:
        """Create the Secret, or replace its data if podidentity manages it.

        Raises:
            KubeConflictError: the Secret exists and is not managed by podidentity, or kept
                changing under us.
            KubeError: the API refused (forbidden, invalid, unavailable).
        """
        for _attempt in range(5):
            existing = self._call(self.api.read_namespaced_secret, self.name, self.namespace)
            if existing is None:
                if (
                    self._call(
                        self.api.create_namespaced_secret,
                        self.namespace,
                        self.body(outputs),
                        conflict_ok=True,
                    )
                    is None
                ):
                    continue  # created by someone else meanwhile: read it and decide again
                logger.info(
                    "created Secret %s/%s with %d keys", self.namespace, self.name, len(outputs)
                )
                return
            labels = getattr(existing.metadata, "labels", None) or {}
            if labels.get(MANAGED_BY[0]) != MANAGED_BY[1]:
                raise KubeConflictError(
                    f"Secret {self.namespace}/{self.name} exists and is not managed by "
                    f"podidentity (no label {MANAGED_BY[0]}={MANAGED_BY[1]}); refusing to "
                    "overwrite it: choose another name or delete it",
                    code=409,
                    reason="Conflict",
                )
            body = self.body(outputs, existing.metadata.resource_version)
            if (
                self._call(
                    self.api.replace_namespaced_secret,
                    self.name,
                    self.namespace,
                    body,
                    conflict_ok=True,
                )
                is None
            ):
                continue  # changed meanwhile: read again
            logger.info(
                "updated Secret %s/%s with %d keys", self.namespace, self.name, len(outputs)
            )
            return
        raise KubeConflictError(
            f"Secret {self.namespace}/{self.name} kept changing while it was written; try again",
            code=409,
            reason="Conflict",
        )

    def _call(self, fn: Any, *args: Any, conflict_ok: bool = False) -> Any:
        """Call the API; ``None`` for 404 (reads) or 409 (writes, when ``conflict_ok``)."""
        try:
            return fn(*args)
        except Exception as err:
            status = getattr(err, "status", None)
            if not isinstance(status, int):
                raise
            if status == 404 and fn.__name__.startswith("read"):
                return None
            if status == 409 and conflict_ok:
                return None
            reason = str(getattr(err, "reason", "") or "")
            message = f"Secret {self.namespace}/{self.name}: {status} {reason}"
            if status in (401, 403):
                raise KubeForbiddenError(message, code=status, reason=reason) from err
            if status == 404:
                raise KubeNotFoundError(message, code=status, reason=reason) from err
            raise KubeError(message, code=status, reason=reason) from err
