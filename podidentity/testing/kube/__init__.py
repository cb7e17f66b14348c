"""A faithful in-memory Kubernetes API server for tests: :class:`KubeEmulator`.

The official clients (``kubernetes``, ``kubernetes.aio``, kubectl) talk to it over real HTTP(S)
on 127.0.0.1. It serves core pods, nodes, namespaces, secrets, service accounts, config maps and
events, leases, events.k8s.io events, CRDs and any custom resource they define, with
resourceVersions, watches, selectors, paging, patches, finalizers, status subresources,
validation, faults on demand and plug-in points (:class:`APIServer`). See
``docs/testing-kube.md``.
"""

from __future__ import annotations

from ._apiserver import ADMIN_USER, AdmissionRequest, APIRequest, APIServer, UserInfo
from ._emulator import KubeEmulator
from ._errors import APIError
from ._identities import ServiceAccountIdentity
from ._kubeconfig import InClusterConfig
from ._resources import PrinterColumn, ResourceType

__all__ = [
    "ADMIN_USER",
    "APIError",
    "APIRequest",
    "APIServer",
    "AdmissionRequest",
    "InClusterConfig",
    "KubeEmulator",
    "PrinterColumn",
    "ResourceType",
    "ServiceAccountIdentity",
    "UserInfo",
]
