"""Hypothesis strategies for the model tests: JSON, valid canonical objects, selectors."""

from __future__ import annotations

import string
from typing import Any

from hypothesis import strategies as st

ALNUM = string.ascii_letters + string.digits

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)

dns_label = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?", fullmatch=True)
label_name = st.from_regex(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,8}[A-Za-z0-9])?", fullmatch=True)
label_key = st.builds(
    lambda prefix, name: f"{prefix}/{name}" if prefix else name,
    st.none() | st.builds(lambda a, b: f"{a}.{b}", dns_label, dns_label),
    label_name,
)
label_value = st.just("") | label_name
labels = st.dictionaries(label_key, label_value, max_size=5)
nonempty_text = st.text(min_size=1, max_size=12)

# Unknown fields never collide with known ones: a prefix no field uses.
unknown_fields = st.dictionaries(
    st.text(min_size=1, max_size=8).map(lambda s: "x-" + s), json_values, max_size=3
)


@st.composite
def metadata(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {"name": draw(nonempty_text)}
    optional = {
        "namespace": nonempty_text,
        "labels": st.dictionaries(nonempty_text, st.text(), min_size=1, max_size=3),
        "annotations": st.dictionaries(nonempty_text, st.text(), min_size=1, max_size=3),
        "uid": nonempty_text,
        "resourceVersion": nonempty_text,
        "generation": st.integers(min_value=0, max_value=2**40),
        "creationTimestamp": st.just("2024-05-01T12:00:00Z"),
        "deletionTimestamp": st.just("2024-05-01T12:30:05.250000Z"),
        "finalizers": st.lists(nonempty_text, min_size=1, max_size=2),
        "ownerReferences": st.lists(
            st.fixed_dictionaries(
                {
                    "apiVersion": st.just("v1"),
                    "kind": st.just("Pod"),
                    "name": nonempty_text,
                    "uid": nonempty_text,
                },
                optional={"controller": st.booleans(), "blockOwnerDeletion": st.booleans()},
            ),
            min_size=1,
            max_size=2,
        ),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            out[key] = draw(strategy)
    out.update(draw(unknown_fields))
    return out


def _maybe(draw: st.DrawFn, strategies: dict[str, Any]) -> dict[str, Any]:
    return {k: draw(s) for k, s in strategies.items() if draw(st.booleans())}


requirement = st.one_of(
    st.fixed_dictionaries(
        {
            "key": label_key,
            "operator": st.sampled_from(["In", "NotIn"]),
            "values": st.lists(label_value, min_size=1, max_size=3),
        }
    ),
    st.fixed_dictionaries(
        {"key": label_key, "operator": st.sampled_from(["Exists", "DoesNotExist"])}
    ),
)


@st.composite
def label_selector_dicts(draw: st.DrawFn) -> dict[str, Any]:
    return _maybe(
        draw,
        {
            "matchLabels": st.dictionaries(label_key, label_value, min_size=1, max_size=3),
            "matchExpressions": st.lists(requirement, min_size=1, max_size=4),
        },
    )


def _status(draw: st.DrawFn, fields: dict[str, Any]) -> dict[str, Any]:
    status = _maybe(draw, fields)
    status.update(draw(unknown_fields))
    return status


@st.composite
def identity_dicts(draw: st.DrawFn, embedded: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": draw(st.integers(0, 3))}
    spec |= _maybe(
        draw,
        {
            "resourceID": nonempty_text,
            "clientID": nonempty_text,
            "clientPassword": st.fixed_dictionaries(
                {}, optional={"name": nonempty_text, "namespace": nonempty_text}
            ),
            "tenantID": nonempty_text,
            "auxiliaryTenantIDs": st.lists(st.text(), min_size=1, max_size=2),
            "adResourceID": nonempty_text,
            "adEndpoint": nonempty_text,
            "replicas": st.integers(0, 2**31 - 1),
        },
    )
    spec.update(draw(unknown_fields))
    return _resource(draw, "AzureIdentity", spec, {"availableReplicas": st.integers(0, 5)})


@st.composite
def binding_dicts(draw: st.DrawFn) -> dict[str, Any]:
    spec = _maybe(
        draw,
        {
            "azureIdentity": nonempty_text,
            "selector": nonempty_text,
            "weight": st.integers(-(2**40), 2**40),
            "labelSelector": label_selector_dicts(),
            "serviceAccountNames": st.lists(nonempty_text, max_size=2),
        },
    )
    spec.update(draw(unknown_fields))
    return _resource(draw, "AzureIdentityBinding", spec, {"availableReplicas": st.integers(0, 5)})


@st.composite
def assigned_dicts(draw: st.DrawFn) -> dict[str, Any]:
    spec = _maybe(
        draw,
        {
            "azureIdentityRef": identity_dicts(),
            "azureBindingRef": binding_dicts(),
            "pod": nonempty_text,
            "podNamespace": nonempty_text,
            "nodename": nonempty_text,
            "replicas": st.integers(0, 3),
        },
    )
    spec.update(draw(unknown_fields))
    return _resource(
        draw,
        "AzureAssignedIdentity",
        spec,
        {
            "status": st.sampled_from(["Created", "Assigned", "Unassigned"]),
            "availableReplicas": st.integers(0, 5),
        },
    )


@st.composite
def exception_dicts(draw: st.DrawFn) -> dict[str, Any]:
    spec = _maybe(draw, {"podLabels": st.dictionaries(nonempty_text, st.text(), min_size=1)})
    spec.update(draw(unknown_fields))
    return _resource(draw, "AzurePodIdentityException", spec, {"status": nonempty_text})


def _resource(draw: st.DrawFn, kind: str, spec: dict[str, Any], status: dict[str, Any]) -> Any:
    out: dict[str, Any] = {
        "apiVersion": "aadpodidentity.k8s.io/v1",
        "kind": kind,
        "metadata": draw(metadata()),
        "spec": spec,
    }
    status_dict = _status(draw, status)
    if status_dict:
        out["status"] = status_dict
    out.update(draw(unknown_fields))
    return out


resource_dicts = identity_dicts() | binding_dicts() | assigned_dicts() | exception_dicts()
