"""Syntax rules for names and identifiers, and suggestions that fix common mistakes.

The rules are Kubernetes' own (DNS-1123, label keys and values) and Azure's (GUIDs, ARM IDs of
user-assigned identities). They live apart from the models so that the selector parser, the
``problems()`` checks and other layers share one definition.
"""

from __future__ import annotations

import re

__all__ = [
    "is_dns1123_label",
    "is_dns1123_subdomain",
    "is_guid",
    "is_label_key",
    "is_label_value",
    "is_placeholder",
    "is_qualified_name_part",
    "is_user_assigned_identity_id",
    "suggest_dns1123",
    "suggest_label_value",
]

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
_DNS1123_SUBDOMAIN = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z"
)
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]\Z")
_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\Z")
# ARM segment names are case-insensitive; resource group names allow ()._- and Unicode
# letters/digits (1-90 chars, not ending in a period); identity names 3-128 of [A-Za-z0-9_-].
_USER_ASSIGNED_ID = re.compile(
    r"/subscriptions/[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}"
    r"/resourcegroups/[-\w.()]{0,89}[-\w()]"
    r"/providers/microsoft\.managedidentity/userassignedidentities/[a-z0-9][-a-z0-9_]{2,127}\Z",
    re.IGNORECASE,
)
# CLIENT_ID, <IDENTITY_CLIENT_ID>, ${TENANT}, $(CLIENT), {{ .Values.id }}, xxxxxxxx-...
_PLACEHOLDER = re.compile(
    r"(?:[A-Z][A-Z0-9]*_[A-Z0-9_]+|[A-Z]{2,})\Z|.*(?:<[^>]*>|\$\{|\$\(|\{\{)|[xX-]+\Z", re.DOTALL
)


def is_dns1123_label(value: str, *, limit: int | None = 63) -> bool:
    """True for a DNS-1123 label: namespaces and service names (at most 63 characters).

    ``limit=None`` checks only the characters (the API server reports length separately).
    """
    return (limit is None or len(value) <= limit) and _DNS1123_LABEL.match(value) is not None


def is_dns1123_subdomain(value: str, *, limit: int | None = 253) -> bool:
    """True for a DNS-1123 subdomain: the rule for most object names (at most 253 characters).

    ``limit=None`` checks only the characters (the API server reports length separately).
    """
    return (limit is None or len(value) <= limit) and _DNS1123_SUBDOMAIN.match(value) is not None


def is_qualified_name_part(value: str, *, limit: int | None = 63) -> bool:
    """True for the name part of a qualified name (label key, finalizer): ``[A-Za-z0-9_.-]``."""
    return (limit is None or len(value) <= limit) and _QUALIFIED_NAME.match(value) is not None


def is_label_key(value: str) -> bool:
    """True for a label key: an optional DNS-1123 subdomain prefix and ``/``, then a name."""
    prefix, slash, name = value.rpartition("/")
    if slash and not (prefix and is_dns1123_subdomain(prefix)):
        return False
    return len(name) <= 63 and _QUALIFIED_NAME.match(name) is not None


def is_label_value(value: str) -> bool:
    """True for a label value: empty, or up to 63 alphanumerics with ``-_.`` inside."""
    return value == "" or (len(value) <= 63 and _QUALIFIED_NAME.match(value) is not None)


def is_guid(value: str) -> bool:
    """True for a GUID in its usual 8-4-4-4-12 hexadecimal form, the form Azure AD uses."""
    return _GUID.match(value) is not None


def is_placeholder(value: str) -> bool:
    """True for text that was obviously meant to be replaced, like ``CLIENT_ID`` or ``<ID>``."""
    return _PLACEHOLDER.match(value) is not None


def is_user_assigned_identity_id(value: str) -> bool:
    """True for the ARM ID of a user-assigned managed identity (segments case-insensitive)."""
    return _USER_ASSIGNED_ID.match(value) is not None


def suggest_dns1123(value: str, *, limit: int = 253) -> str:
    """Return the nearest DNS-1123 name: lowercase, ``_`` and spaces to ``-``, rest dropped.

    ``demo_aks_pod_id`` becomes ``demo-aks-pod-id``. Returns ``""`` when nothing is left.
    """
    text = re.sub(r"[_\s]+", "-", value.strip().lower())
    text = re.sub(r"[^-a-z0-9.]", "", text)
    text = re.sub(r"-{2,}", "-", text)
    text = re.sub(r"\.{2,}", ".", text)
    text = re.sub(r"-*\.-*", ".", text)
    return text[:limit].strip("-.")


def suggest_label_value(value: str) -> str:
    """Return the nearest valid label value: invalid characters become ``-``, ends trimmed."""
    text = re.sub(r"[^-A-Za-z0-9_.]+", "-", value)
    return text[:63].strip("-_.")
