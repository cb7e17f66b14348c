"""How the proxy behaves: cache, waiting for assignments, upstream failures, exceptions, probes."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys

import httpx
import pytest

from podidentity.models import AssignedIdentityState
from podidentity.testing._jwt import unverified_claims
from podidentity.testing.azure._emulator import ImdsEndpoint
from tests.nmi.inprocess import METADATA, TOKEN_PATH, MakeProxy, client, pod_ip
from tests.nmi.world import GROUP, VERSION, NmiWorld, unique


def node_imds(world: NmiWorld, node: str) -> ImdsEndpoint:
    where = world.sandbox.node(node)
    return world.sandbox.azure.imds(vmss=where.compute, instance=where.instance or 0)


async def test_a_cold_cache_makes_one_upstream_call_for_1000_concurrent_requests(
    world: NmiWorld, nodes: list[str], make_proxy: MakeProxy
) -> None:
    pod = world.pod(unique("burst"), selector="burst", node=nodes[1])
    _, identity = world.msi("burst", on_node=nodes[1])
    world.assign(pod, identity)
    proxy = await make_proxy(nodes[1])
    imds = node_imds(world, nodes[1])
    before = len(imds.log.find(path="/metadata/identity/oauth2/token"))
    async with client(proxy, pod_ip(pod)) as http:
        answers = await asyncio.gather(
            *(http.get(TOKEN_PATH, headers=METADATA) for _ in range(1000))
        )
    assert {a.status_code for a in answers} == {200}
    assert len({a.json()["access_token"] for a in answers}) == 1
    assert len(imds.log.find(path="/metadata/identity/oauth2/token")) - before == 1
    assert proxy.cache.upstream_calls == 1


async def test_a_pending_assignment_is_answered_when_it_turns_assigned(
    world: NmiWorld, nodes: list[str], make_proxy: MakeProxy
) -> None:
    pod = world.pod(unique("waiting"), selector="later", node=nodes[0])
    managed, identity = world.msi("later", on_node=nodes[0])
    record = world.assign(pod, identity, state=AssignedIdentityState.CREATED)
    proxy = await make_proxy(nodes[0], pending_timeout=60.0)
    async with client(proxy, pod_ip(pod)) as http:
        request = asyncio.ensure_future(http.get(TOKEN_PATH, headers=METADATA))
        await asyncio.sleep(0)
        assert not request.done()
        await asyncio.to_thread(world.set_state, record, AssignedIdentityState.ASSIGNED)
        answer = await request
    assert answer.status_code == 200
    assert unverified_claims(answer.json()["access_token"])["oid"] == managed.principal_id


async def test_identities_imds_does_not_serve_yet_are_polled_on_one_node_budget(
    world: NmiWorld, nodes: list[str], make_proxy: MakeProxy
) -> None:
    """Assigned in ARM a moment ago: IMDS answers "not assigned" until its propagation window
    has passed. Both pods get their token then, and their polls shared the node's pace."""
    azure = world.sandbox.azure
    where = world.sandbox.node(nodes[0])
    pods = []
    for name in ("lagging-a", "lagging-b"):
        pod = world.pod(unique(name), selector=name, node=nodes[0])
        managed, identity = world.msi(name)
        # IMDS starts serving these about 0.6 s from now.
        azure.world.assign_identities(
            where.compute,
            [managed],
            assigned_at=azure.world.clock() - azure.imds_service.identity_delay + 0.6,
        )
        world.assign(pod, identity)
        pods.append(pod)
    proxy = await make_proxy(nodes[0], request_deadline=30.0)
    most_waiting = 0

    async def watch_pace() -> None:
        nonlocal most_waiting
        while True:
            most_waiting = max(most_waiting, proxy.propagation.waiting)
            await asyncio.sleep(0.01)

    watcher = asyncio.ensure_future(watch_pace())
    try:
        async with client(proxy, pod_ip(pods[0])) as one, client(proxy, pod_ip(pods[1])) as two:
            done = await asyncio.gather(
                one.get(TOKEN_PATH, headers=METADATA), two.get(TOKEN_PATH, headers=METADATA)
            )
    finally:
        watcher.cancel()
    assert [a.status_code for a in done] == [200, 200]
    assert most_waiting == 2
    assert proxy.propagation.waiting == 0


async def test_a_pending_assignment_times_out_with_imds_not_yet_answer(
    world: NmiWorld, nodes: list[str], make_proxy: MakeProxy
) -> None:
    pod = world.pod(unique("never"), selector="never", node=nodes[0])
    _, identity = world.msi("never", on_node=nodes[0])
    world.assign(pod, identity, state=AssignedIdentityState.CREATED)
    proxy = await make_proxy(nodes[0], pending_timeout=0.2, pending_retry_after=7)
    async with client(proxy, pod_ip(pod)) as http:
        answer = await http.get(TOKEN_PATH, headers=METADATA)
    assert answer.status_code == 404
    assert answer.headers["retry-after"] == "7"
    assert answer.json()["error"] == "identity_not_ready"


async def test_throttling_upstream_is_answered_as_throttling(
    world: NmiWorld, nodes: list[str], make_proxy: MakeProxy
) -> None:
    pod = world.pod(unique("throttled"), selector="throttled", node=nodes[1])
    _, identity = world.msi("throttled", on_node=nodes[1])
    world.assign(pod, identity)
    proxy = await make_proxy(nodes[1], request_deadline=1.0)
    imds = node_imds(world, nodes[1])
    fault = imds.faults.fail_next(0, status=429, retry_after=30, path="token")
    try:
        async with client(proxy, pod_ip(pod)) as http:
            answer = await http.get(TOKEN_PATH, headers=METADATA)
    finally:
        imds.faults.remove(fault)
    assert answer.status_code == 429
    assert answer.headers["retry-after"] == "30"


async def test_transient_upstream_failures_are_retried_within_the_deadline(
    world: NmiWorld, nodes: list[str], make_proxy: MakeProxy
) -> None:
    pod = world.pod(unique("flaky"), selector="flaky", node=nodes[1])
    _, identity = world.msi("flaky", on_node=nodes[1])
    world.assign(pod, identity)
    proxy = await make_proxy(nodes[1], request_deadline=30.0)
    imds = node_imds(world, nodes[1])
    fault = imds.faults.fail_next(2, status=503, path="token")
    try:
        async with client(proxy, pod_ip(pod)) as http:
            answer = await http.get(TOKEN_PATH, headers=METADATA)
    finally:
        imds.faults.remove(fault)
    assert answer.status_code == 200


async def test_rejected_credentials_are_answered_403(
    world: NmiWorld, nodes: list[str], make_proxy: MakeProxy
) -> None:
    pod = world.pod(unique("badsecret"), selector="badsecret", node=nodes[0])
    _, identity = world.service_principal(unique("badsecret"))
    assert identity.client_password is not None
    world.core.patch_namespaced_secret(
        identity.client_password.name,
        "default",
        {"data": {"clientSecret": base64.b64encode(b"not-the-secret").decode()}},
    )
    world.assign(pod, identity, selector="badsecret")
    proxy = await make_proxy(nodes[0])
    async with client(proxy, pod_ip(pod)) as http:
        answer = await http.get(TOKEN_PATH, headers=METADATA)
    assert answer.status_code == 403
    assert answer.json()["error"] == "unauthorized_client"
    assert "not-the-secret" not in answer.text


async def test_exception_pods_get_the_node_identity_and_no_one_else_does(
    world: NmiWorld, nodes: list[str], make_proxy: MakeProxy
) -> None:
    namespace = world.namespace(unique("system"))
    agent = world.pod(unique("agent"), namespace=namespace, node=nodes[0], labels={"app": "agent"})
    other = world.pod(unique("other"), namespace=namespace, node=nodes[0], labels={"app": "web"})
    node_identity, _ = world.msi("node-agent", on_node=nodes[0])
    world.custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "azurepodidentityexceptions",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AzurePodIdentityException",
            "metadata": {"name": "agents"},
            "spec": {"podLabels": {"app": "agent"}},
        },
    )
    proxy = await make_proxy(nodes[0])
    query = f"{TOKEN_PATH}&client_id={node_identity.client_id}"
    async with client(proxy, pod_ip(agent)) as http:
        granted = await http.get(query, headers=METADATA)
    assert granted.status_code == 200
    assert unverified_claims(granted.json()["access_token"])["oid"] == node_identity.principal_id
    async with client(proxy, pod_ip(other)) as http:
        refused = await http.get(query, headers=METADATA)
    assert refused.status_code != 200
    assert "access_token" not in refused.text


def test_probes_and_metrics_on_their_own_port(world: NmiWorld, nodes: list[str]) -> None:
    server = world.sandbox.token_proxy(nodes[0])
    assert httpx.get(f"{server.probe_url}/healthz").status_code == 200
    assert httpx.get(f"{server.probe_url}/readyz").status_code == 200
    metrics = httpx.get(f"{server.probe_url}/metrics")
    assert "podidentity_nmi_requests_total" in metrics.text
    assert "podidentity_nmi_token_cache_hits_total" in metrics.text
    # The token port serves tokens only.
    for path in ("/healthz", "/metrics"):
        assert httpx.get(f"{server.url}{path}").status_code == 404


def test_a_child_process_given_the_environment_is_the_pod(
    world: NmiWorld, nodes: list[str]
) -> None:
    name = unique("child")
    pod = world.pod(name, selector="child", node=nodes[1])
    managed, identity = world.msi("child", on_node=nodes[1])
    world.assign(pod, identity)
    script = (
        "from azure.identity import ManagedIdentityCredential\n"
        f"print(ManagedIdentityCredential(client_id={managed.client_id!r})"
        ".get_token('https://vault.azure.net/.default').token)\n"
    )
    with world.sandbox.as_pod(name) as env:
        done = subprocess.run(
            [sys.executable, "-c", script],
            env={**env, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    assert unverified_claims(done.stdout.strip())["oid"] == managed.principal_id


@pytest.mark.parametrize("state", [AssignedIdentityState.UNASSIGNED])
async def test_an_unassigned_record_gives_nothing(
    world: NmiWorld, nodes: list[str], make_proxy: MakeProxy, state: AssignedIdentityState
) -> None:
    pod = world.pod(unique("gone"), selector="gone", node=nodes[0])
    managed, identity = world.msi("gone", on_node=nodes[0])
    world.assign(pod, identity, state=state)
    proxy = await make_proxy(nodes[0], pending_timeout=0.2)
    async with client(proxy, pod_ip(pod)) as http:
        answer = await http.get(f"{TOKEN_PATH}&client_id={managed.client_id}", headers=METADATA)
    assert answer.status_code == 404
    assert json.loads(answer.text)["error"] == "identity_not_ready"


async def test_a_waiting_request_stops_when_its_client_disconnects(
    world: NmiWorld, nodes: list[str], make_proxy: MakeProxy
) -> None:
    pod = world.pod(unique("impatient"), selector="impatient", node=nodes[0])
    _, identity = world.msi("impatient", on_node=nodes[0])
    world.assign(pod, identity, state=AssignedIdentityState.CREATED)
    proxy = await make_proxy(nodes[0], pending_timeout=600.0)
    path, _, query = TOKEN_PATH.partition("?")
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(b"metadata", b"true")],
        "client": (pod_ip(pod), 40000),
    }
    gone = asyncio.Event()
    sent: list[object] = []

    async def receive() -> dict[str, object]:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: object) -> None:
        sent.append(message)

    request = asyncio.ensure_future(proxy(scope, receive, send))
    await asyncio.sleep(0)
    assert not request.done()
    gone.set()
    await asyncio.wait_for(request, 30)  # returns long before the 600 s pending timeout
    assert sent == []
    refusals = proxy.metrics.registry.get_sample_value(
        "podidentity_nmi_refusals_total", {"reason": "client_gone"}
    )
    assert refusals == 1
