"""Who is calling and which identity they get: the pure rules, each tried against a breach."""

from __future__ import annotations

import datetime as dt

import attrs
import pytest

from podidentity.errors import CallerNotIdentifiedError, IdentityNotPermittedError
from podidentity.models import (
    AssignedIdentityState,
    AzureAssignedIdentity,
    AzurePodIdentityException,
    IdentityType,
    ObjectMeta,
)
from podidentity.nmi.callers import (
    PodInfo,
    caller_for_address,
    identities_of,
    is_excepted,
    select_identities,
)
from tests.nmi.builders import assigned, binding, identity

NODE = "node-a"


@attrs.define
class View:
    """A node's state as plain lists (the protocol's pure half)."""

    pods: list[PodInfo] = attrs.field(factory=list)
    records: list[AzureAssignedIdentity] = attrs.field(factory=list)
    node_name: str = NODE
    synced: bool = True

    def pods_with_ip(self, ip: str) -> list[PodInfo]:
        return [p for p in self.pods if p.ip == ip]

    def pod(self, namespace: str, name: str) -> PodInfo | None:
        return next((p for p in self.pods if (p.namespace, p.name) == (namespace, name)), None)

    def assignments(self, namespace: str, name: str) -> list[AzureAssignedIdentity]:
        return [r for r in self.records if (r.pod_namespace, r.pod) == (namespace, name)]

    def exceptions(self, namespace: str) -> list[AzurePodIdentityException]:
        return []

    async def changed(self) -> None:
        raise NotImplementedError


def pod(name: str, ip: str = "", **kwargs: object) -> PodInfo:
    fields: dict[str, object] = {
        "namespace": "default",
        "uid": f"uid-{name}",
        "node_name": NODE,
        "phase": "Running",
        **kwargs,
    }
    return PodInfo(name=name, ip=ip, **fields)  # type: ignore[arg-type]


def test_the_caller_is_the_pod_with_the_peer_address() -> None:
    view = View([pod("web", "127.10.0.5"), pod("api", "127.10.0.6")])
    assert caller_for_address(view, "127.10.0.6").name == "api"


def test_unknown_addresses_and_the_host_network_get_no_pod() -> None:
    view = View([pod("agent", "127.20.0.1", host_network=True)])
    with pytest.raises(CallerNotIdentifiedError, match="no pod on node node-a has the IP"):
        caller_for_address(view, "127.10.9.9")
    with pytest.raises(CallerNotIdentifiedError, match="host network"):
        caller_for_address(view, "127.20.0.1")


def test_two_live_pods_with_one_address_are_refused_not_guessed() -> None:
    view = View([pod("one", "127.10.0.5"), pod("two", "127.10.0.5")])
    with pytest.raises(CallerNotIdentifiedError, match=r"default/one, default/two.*refusing"):
        caller_for_address(view, "127.10.0.5")


def test_a_reused_address_belongs_to_the_live_pod_not_the_terminating_one() -> None:
    old = pod("old", "127.10.0.5", terminating=True)
    new = pod("new", "127.10.0.5")
    assert caller_for_address(View([old, new]), "127.10.0.5").name == "new"
    # Alone, a terminating pod still is the caller during its grace period.
    assert caller_for_address(View([old]), "127.10.0.5").name == "old"
    finished = pod("done", "127.10.0.7", phase="Succeeded")
    with pytest.raises(CallerNotIdentifiedError):
        caller_for_address(View([finished]), "127.10.0.7")


def test_only_assigned_records_of_this_pod_on_this_node_count() -> None:
    mine, pending_id, elsewhere, other_pod = (identity(n) for n in ("mine", "p", "else", "o"))
    web = pod("web", "127.10.0.5", labels={"aadpodidbinding": "mine"})
    records = [
        assigned("web", NODE, mine),
        assigned("web", NODE, pending_id, state=AssignedIdentityState.CREATED),
        assigned("web", "node-b", elsewhere),
        assigned("api", NODE, other_pod),
    ]
    usable, pending = identities_of(web, records, NODE)
    assert [i.name for i in usable] == ["mine"]
    assert [i.name for i in pending] == []  # the pod does not carry the pending binding's label


def test_a_stale_record_gives_nothing() -> None:
    ident = identity("orders")
    labelled = pod("web", "127.10.0.5", labels={"aadpodidbinding": "orders"})
    relabelled = pod("web", "127.10.0.5", labels={"aadpodidbinding": "other"})
    record = assigned("web", NODE, ident)
    assert identities_of(labelled, [record], NODE)[0] == [ident]
    assert identities_of(relabelled, [record], NODE)[0] == []


def test_a_binding_in_another_namespace_gives_nothing() -> None:
    ident = identity("orders", namespace="shop")
    bind = binding("orders", "orders", namespace="shop")
    intruder = pod("web", "127.10.0.5", namespace="evil", labels={"aadpodidbinding": "orders"})
    record = assigned("web", NODE, ident, pod_namespace="evil", bind=bind)
    assert identities_of(intruder, [record], NODE) == ([], [])


def test_a_service_account_the_binding_does_not_allow_gives_nothing() -> None:
    ident = identity("orders")
    bind = binding("orders", "orders", service_accounts=["orders"])
    labels = {"aadpodidbinding": "orders"}
    allowed = pod("web", "127.10.0.5", labels=labels, service_account="orders")
    refused = pod("web", "127.10.0.5", labels=labels, service_account="default")
    record = assigned("web", NODE, ident, bind=bind)
    assert identities_of(allowed, [record], NODE)[0] == [ident]
    assert identities_of(refused, [record], NODE)[0] == []


def test_selection_by_each_parameter_and_refusal_naming_own_client_ids() -> None:
    first, second = identity("first"), identity("second")
    web = pod("web")
    both = [first, second]
    assert select_identities(web, both, [], None).candidates == (first,)
    assert select_identities(web, both, [], ("client_id", second.client_id.upper())).candidates == (
        second,
    )
    assert select_identities(
        web, both, [], ("msi_res_id", second.resource_id.lower())
    ).candidates == (second,)
    assert select_identities(web, both, [], ("mi_res_id", first.resource_id)).candidates == (first,)
    assert select_identities(web, both, [], ("object_id", "x")).candidates == (first, second)
    kubelet = identity("kubelet")
    with pytest.raises(IdentityNotPermittedError) as refused:
        select_identities(web, both, [], ("client_id", kubelet.client_id))
    message = str(refused.value)
    assert first.client_id in message
    assert second.client_id in message
    assert kubelet.client_id in message  # it repeats what was asked, nothing else


def test_no_identity_yet_waits_and_pending_match_waits() -> None:
    web, pending = pod("web"), identity("pending")
    assert select_identities(web, [], [], None).wait
    assert select_identities(web, [], [], ("client_id", "anything")).wait
    assert select_identities(web, [identity("x")], [pending], ("client_id", pending.client_id)).wait


def test_default_choice_is_the_oldest_assignment() -> None:
    older, newer = identity("zeta"), identity("alpha")
    web = pod("web", labels={"aadpodidbinding": "zeta"})
    web = attrs.evolve(web, labels={"aadpodidbinding": "zeta"})
    stamp = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    records = [
        attrs.evolve(
            assigned("web", NODE, ident, bind=binding(ident.name, ident.name, selector="zeta")),
            metadata=ObjectMeta(
                name=f"web-default-{ident.name}",
                namespace="default",
                creation_timestamp=stamp + dt.timedelta(seconds=offset),
            ),
        )
        for ident, offset in ((newer, 10), (older, 0))
    ]
    usable, _ = identities_of(web, records, NODE)
    assert [i.name for i in usable] == ["zeta", "alpha"]


def test_exception_and_controller_pods() -> None:
    exception = AzurePodIdentityException(
        metadata=ObjectMeta(name="system", namespace="kube-system"),
        pod_labels={"app": "Agent"},
    )
    agent = pod("agent", namespace="kube-system", labels={"app": "agent"})
    same_label_elsewhere = pod("agent", namespace="default", labels={"app": "agent"})
    controller = pod(
        "mic",
        namespace="kube-system",
        labels={"app.kubernetes.io/component": "podidentity-controller"},
    )
    labels = (("app.kubernetes.io/component", "podidentity-controller"),)
    assert is_excepted(
        agent, [exception], controller_namespace="kube-system", controller_labels=labels
    )
    assert not is_excepted(
        same_label_elsewhere,
        [exception],
        controller_namespace="kube-system",
        controller_labels=labels,
    )
    assert is_excepted(controller, [], controller_namespace="kube-system", controller_labels=labels)
    impostor = attrs.evolve(controller, namespace="default")
    assert not is_excepted(
        impostor, [], controller_namespace="kube-system", controller_labels=labels
    )
    assert not is_excepted(controller, [], controller_namespace="kube-system", controller_labels=())


def test_pod_info_from_the_wire() -> None:
    info = PodInfo.from_dict(
        {
            "metadata": {"name": "w", "namespace": "n", "uid": "u", "deletionTimestamp": "x"},
            "spec": {"nodeName": NODE, "serviceAccountName": "sa", "hostNetwork": True},
            "status": {"podIP": "127.10.0.1", "phase": "Running"},
        }
    )
    assert (info.key, info.ip, info.service_account, info.terminating, info.host_network) == (
        "n/w",
        "127.10.0.1",
        "sa",
        True,
        True,
    )
    assert IdentityType.USER_ASSIGNED_MSI.value == 0
