"""Who may use a binding, who is exempt: the rules that keep pods away from identities."""

from __future__ import annotations

import pytest

from podidentity.models import (
    ASSIGNED_IDENTITY_FINALIZER,
    AssignedIdentityState,
    AzureAssignedIdentity,
    AzureIdentity,
    AzureIdentityBinding,
    AzurePodIdentityException,
    LabelSelector,
    ObjectMeta,
    assigned_identity_name,
    parse,
)

META = ObjectMeta(name="b", namespace="default")


def binding(**kwargs: object) -> AzureIdentityBinding:
    return AzureIdentityBinding(metadata=META, azure_identity="id", **kwargs)  # type: ignore[arg-type]


def test_legacy_selector_is_exact() -> None:
    b = binding(selector="demo")
    assert b.matches({"aadpodidbinding": "demo"}, service_account="default")
    assert not b.matches({"aadpodidbinding": "Demo"}, service_account="default")
    assert not b.matches({"aadpodidbinding": "demo2"}, service_account="default")
    assert not b.matches({"app": "demo"}, service_account="default")


def test_binding_without_selectors_matches_no_pod() -> None:
    b = binding()
    assert not b.matches({}, service_account="default")
    assert not b.matches({"aadpodidbinding": ""}, service_account="default")


def test_label_selector_extension() -> None:
    b = binding(label_selector=LabelSelector.parse("app=web,tier in (a,b)"))
    assert b.matches({"app": "web", "tier": "a"}, service_account="default")
    assert not b.matches({"app": "web"}, service_account="default")


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"aadpodidbinding": "demo", "app": "web"}, True),
        ({"aadpodidbinding": "demo"}, False),  # label selector fails
        ({"app": "web"}, False),  # legacy selector fails
    ],
)
def test_both_selectors_must_match(labels: dict[str, str], expected: bool) -> None:
    b = binding(selector="demo", label_selector=LabelSelector(match_labels={"app": "web"}))
    assert b.matches(labels, service_account="default") is expected


def test_service_account_allow_list() -> None:
    labels = {"aadpodidbinding": "demo"}
    b = binding(selector="demo", service_account_names=["api", "worker"])
    assert b.matches(labels, service_account="api")
    assert not b.matches(labels, service_account="default")
    assert not b.matches(labels, service_account=None)
    assert not binding(selector="demo", service_account_names=[]).matches(
        labels, service_account="api"
    )
    assert binding(selector="demo").matches(labels, service_account=None)


def test_exception_any_pair_case_insensitive_values() -> None:
    exc = AzurePodIdentityException(metadata=META, pod_labels={"foo": "bar", "app": "Custom"})
    assert exc.matches({"app": "CUSTOM"})
    assert exc.matches({"foo": "bar", "app": "other"})
    assert not exc.matches({"FOO": "bar"})  # keys are exact
    assert not exc.matches({"foo": "baz"})
    assert not AzurePodIdentityException(metadata=META).matches({"foo": "bar"})


def test_create_assigned_identity_follows_upstream_conventions() -> None:
    identity = AzureIdentity(metadata=ObjectMeta(name="id", namespace="default"))
    b = binding(selector="demo")
    assigned = AzureAssignedIdentity.create(
        identity=identity, binding=b, pod="web-1", pod_namespace="default", node_name="node-a"
    )
    assert assigned.name == assigned_identity_name("web-1", "default", "id") == "web-1-default-id"
    assert assigned.metadata.labels == {"nodename": "node-a"}
    assert assigned.metadata.finalizers == (ASSIGNED_IDENTITY_FINALIZER,)
    assert assigned.state is AssignedIdentityState.CREATED
    assert assigned.to_dict()["status"] == {"status": "Created"}
    assert parse(assigned.to_dict()) == assigned
