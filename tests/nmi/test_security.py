"""Every rule that keeps a pod from an identity, tried against an attempt to break it.

Each test tries something a hostile pod (or a mistaken object) would, and checks it is
refused, that no token left the proxy, and that nothing sensitive reached the log.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import attrs
import pytest

from podidentity.testing._jwt import JwtSigner, unverified_claims
from tests.nmi.inprocess import METADATA, TOKEN_PATH, MakeProxy, client, pod_ip
from tests.nmi.world import NmiWorld, unique


@pytest.fixture(autouse=True)
def _capture_everything(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)


def no_token(response: Any) -> None:
    assert "access_token" not in response.text
    assert response.status_code != 200


def nothing_secret_logged(caplog: pytest.LogCaptureFixture, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in caplog.text


async def test_a_pod_in_another_namespace_with_the_right_label(
    world: NmiWorld, nodes: list[str], make_proxy: MakeProxy
) -> None:
    shop, evil = world.namespace("shop"), world.namespace(unique("evil"))
    owner = world.pod(unique("owner"), namespace=shop, selector="orders", node=nodes[0])
    intruder = world.pod(unique("intruder"), namespace=evil, selector="orders", node=nodes[0])
    managed, identity = world.msi("orders", namespace=shop, on_node=nodes[0])
    world.assign(owner, identity)
    # Even a record that names the intruder (a mistaken or forged writer) gives it nothing:
    # the binding and the identity live in another namespace.
    world.assign(intruder, identity)
    proxy = await make_proxy(nodes[0])
    async with client(proxy, pod_ip(owner)) as http:
        granted = await http.get(TOKEN_PATH, headers=METADATA)
    assert granted.status_code == 200
    async with client(proxy, pod_ip(intruder)) as http:
        for query in ("", f"&client_id={managed.client_id}"):
            refused = await http.get(TOKEN_PATH + query, headers=METADATA)
            no_token(refused)
            assert refused.status_code == 404
            assert refused.json()["error"] == "identity_not_ready"


async def test_cluster_wide_bindings_reach_other_namespaces_but_not_namespaced_identities(
    world: NmiWorld, nodes: list[str], make_proxy: MakeProxy
) -> None:
    shared, tenant = world.namespace("shared"), world.namespace(unique("tenant"))
    pod = world.pod(unique("migrating"), namespace=tenant, selector="legacy", node=nodes[0])
    managed, identity = world.msi("legacy", namespace=shared, on_node=nodes[0])
    world.assign(pod, identity)
    _, private = world.msi("private", namespace=shared, on_node=nodes[0])
    private = attrs.evolve(
        private,
        metadata=attrs.evolve(
            private.metadata, annotations={"aadpodidentity.k8s.io/Behavior": "namespaced"}
        ),
    )
    world.assign(pod, private, selector="legacy")
    secure = await make_proxy(nodes[0])
    migrating = await make_proxy(nodes[0], cluster_wide_bindings=True)
    async with client(secure, pod_ip(pod)) as http:
        no_token(await http.get(TOKEN_PATH, headers=METADATA))
    async with client(migrating, pod_ip(pod)) as http:
        granted = await http.get(f"{TOKEN_PATH}&client_id={managed.client_id}", headers=METADATA)
        assert granted.status_code == 200
        assert unverified_claims(granted.json()["access_token"])["oid"] == managed.principal_id
        refused = await http.get(f"{TOKEN_PATH}&client_id={private.client_id}", headers=METADATA)
        no_token(refused)


async def test_a_service_account_the_binding_does_not_allow(
    world: NmiWorld, nodes: list[str], make_proxy: MakeProxy
) -> None:
    pod = world.pod(unique("sa"), selector="payroll", node=nodes[0], service_account="default")
    _, identity = world.msi("payroll", on_node=nodes[0])
    world.assign(pod, identity, service_accounts=["payroll"])
    proxy = await make_proxy(nodes[0])
    async with client(proxy, pod_ip(pod)) as http:
        no_token(await http.get(TOKEN_PATH, headers=METADATA))


@pytest.mark.parametrize("parameter", ["client_id", "object_id", "msi_res_id", "mi_res_id"])
async def test_asking_for_another_pods_identity_or_the_node_identity(
    world: NmiWorld,
    nodes: list[str],
    make_proxy: MakeProxy,
    parameter: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    mine = world.pod(unique("mine"), selector="mine", node=nodes[0])
    theirs = world.pod(unique("theirs"), selector="theirs", node=nodes[0])
    my_managed, my_identity = world.msi("mine", on_node=nodes[0])
    their_managed, their_identity = world.msi("theirs", on_node=nodes[0])
    kubelet, _ = world.msi("kubelet", on_node=nodes[0])  # on the node, assigned to no pod
    world.assign(mine, my_identity)
    world.assign(theirs, their_identity)
    proxy = await make_proxy(nodes[0])
    values = {
        "client_id": lambda m: m.client_id,
        "object_id": lambda m: m.principal_id,
        "msi_res_id": lambda m: m.resource_id,
        "mi_res_id": lambda m: m.resource_id,
    }
    async with client(proxy, pod_ip(mine)) as http:
        own = await http.get(
            f"{TOKEN_PATH}&{parameter}={values[parameter](my_managed)}", headers=METADATA
        )
        assert own.status_code == 200
        assert unverified_claims(own.json()["access_token"])["oid"] == my_managed.principal_id
        for other in (their_managed, kubelet):
            refused = await http.get(
                f"{TOKEN_PATH}&{parameter}={values[parameter](other)}", headers=METADATA
            )
            no_token(refused)
            assert refused.status_code == 403
            listed = refused.json()["error_description"].split("assigned to it are:")[1]
            assert listed.split() == [my_managed.client_id]
    nothing_secret_logged(caplog, own.json()["access_token"])


async def test_a_host_network_pod_gets_no_pod_identity(world: NmiWorld, nodes: list[str]) -> None:
    name = unique("hostnet")
    pod = world.pod(name, selector="agent", node=nodes[1], host_network=True)
    _, identity = world.msi("agent", on_node=nodes[1])
    world.assign(pod, identity)
    with world.sandbox.as_pod(name) as env:
        status, _, body = await raw_get(env, TOKEN_PATH.encode(), METADATA)
    assert status == 403
    assert b"host network" in body
    assert b"access_token" not in body


async def test_the_metadata_header_is_required(
    world: NmiWorld, nodes: list[str], make_proxy: MakeProxy
) -> None:
    pod = world.pod(unique("nometa"), selector="meta", node=nodes[0])
    _, identity = world.msi("meta", on_node=nodes[0])
    world.assign(pod, identity)
    proxy = await make_proxy(nodes[0])
    async with client(proxy, pod_ip(pod)) as http:
        for headers in ({}, {"Metadata": "false"}, {"Metadata": "yes"}):
            refused = await http.get(TOKEN_PATH, headers=headers)
            no_token(refused)
            assert refused.status_code == 400
            assert refused.json() == {
                "error": "invalid_request",
                "error_description": "Required metadata header not specified",
            }


async def test_forwarding_headers_never_choose_the_caller(
    world: NmiWorld, nodes: list[str]
) -> None:
    name = unique("victim")
    victim = world.pod(name, selector="victim", node=nodes[0])
    _, identity = world.msi("victim", on_node=nodes[0])
    world.assign(victim, identity)
    server = world.sandbox.token_proxy(nodes[0])
    spoofed = {
        **METADATA,
        "X-Forwarded-For": pod_ip(victim),
        "X-Real-IP": pod_ip(victim),
        "Forwarded": f"for={pod_ip(victim)}",
    }
    # From the node itself (127.0.0.1, what uvicorn trusts for proxy headers by default) and
    # from a pod address that belongs to nobody. Both at once: the proxy gives an address it
    # does not know a grace period to appear before refusing, and each would wait it in turn.
    answers = await asyncio.gather(
        *(
            raw_get(
                {"AZURE_POD_IDENTITY_AUTHORITY_HOST": server.url},
                TOKEN_PATH.encode(),
                spoofed,
                source=source,
            )
            for source in ("127.0.0.1", "127.10.255.254")
        )
    )
    for status, _, body in answers:
        assert status == 403, body
        assert b"access_token" not in body


@pytest.mark.parametrize(
    "path",
    [
        b"/metadata/identity\\oauth2\\token",
        b"/metadata/identity/oauth2/token/..",
        b"/metadata/identity/oauth2/../oauth2/token",
        b"/metadata/identity/oauth2/%74oken",
        b"/metadata/identity%2Foauth2%2Ftoken",
        b"/metadata/instance/../identity/oauth2/token",
        b"/metadata//identity/oauth2/token",
    ],
)
async def test_path_tricks_are_refused_and_never_reach_imds(
    world: NmiWorld, nodes: list[str], path: bytes
) -> None:
    name = unique("paths")
    world.pod(name, selector="paths", node=nodes[0])
    kubelet, _ = world.msi("node-identity", on_node=nodes[0])
    imds = world.sandbox.azure.imds(vmss=world.sandbox.node(nodes[0]).compute, instance=0)
    query = (
        f"?api-version=2018-02-01&resource=https://vault.azure.net&client_id={kubelet.client_id}"
    )
    before = len(imds.log)
    with world.sandbox.as_pod(name) as env:
        status, _, body = await raw_get(env, path + query.encode(), METADATA)
    assert status == 400
    assert b"access_token" not in body
    assert len(imds.log) == before


async def test_the_capitalised_token_path_is_the_token_endpoint_not_a_pass_through(
    world: NmiWorld, nodes: list[str]
) -> None:
    name = unique("caps")
    pod = world.pod(name, selector="caps", node=nodes[0])
    kubelet, _ = world.msi("kubelet-caps", on_node=nodes[0])
    mine, identity = world.msi("caps", on_node=nodes[0])
    world.assign(pod, identity)
    query = (
        f"?api-version=2018-02-01&resource=https://vault.azure.net&client_id={kubelet.client_id}"
    )
    with world.sandbox.as_pod(name) as env:
        status, _, body = await raw_get(
            env, b"/Metadata/identity/oauth2/token" + query.encode(), METADATA
        )
        assert status == 403  # judged by the proxy: the kubelet identity is not the pod's
        status, _, body = await raw_get(
            env,
            b"/METADATA/IDENTITY/OAUTH2/TOKEN/?api-version=1&resource=https://vault.azure.net",
            METADATA,
        )
    assert status == 200
    assert unverified_claims(json.loads(body)["access_token"])["oid"] == mine.principal_id


async def test_service_account_tokens_forged_expired_or_for_another_audience(
    world: NmiWorld, nodes: list[str], make_proxy: MakeProxy, caplog: pytest.LogCaptureFixture
) -> None:
    name = unique("satoken")
    pod = world.pod(name, selector="proof", node=nodes[0], service_account="prover")
    other = world.pod(unique("bystander"), selector="none", node=nodes[0])
    _managed, identity = world.msi("proof", on_node=nodes[0])
    world.assign(pod, identity)
    proxy = await make_proxy(nodes[0], require_service_account_token=True)
    tokens = world.sandbox.kube.service_accounts
    audience = proxy.settings.service_account_audience
    valid = tokens.issue_token("default", "prover", audiences=[audience], pod=name)
    claims = unverified_claims(valid)
    forged = JwtSigner().sign(claims)
    expired = tokens.issue_token(
        "default", "prover", audiences=[audience], pod=name, now=claims["iat"] - 7200
    )
    wrong_audience = tokens.issue_token("default", "prover", audiences=["elsewhere"], pod=name)
    unbound = tokens.issue_token("default", "prover", audiences=[audience])
    async with client(proxy, pod_ip(pod)) as http:
        missing = await http.get(TOKEN_PATH, headers=METADATA)
        no_token(missing)
        assert "requires the caller's projected service-account token" in missing.text
        for bad in (forged, expired, wrong_audience, unbound, "not-a-jwt"):
            refused = await http.get(
                TOKEN_PATH, headers={**METADATA, "Authorization": f"Bearer {bad}"}
            )
            no_token(refused)
            assert refused.status_code == 403
        granted = await http.get(
            TOKEN_PATH, headers={**METADATA, "Authorization": f"Bearer {valid}"}
        )
        assert granted.status_code == 200
    # A valid token presented from another pod's address is refused too.
    async with client(proxy, pod_ip(other)) as http:
        stolen = await http.get(
            TOKEN_PATH, headers={**METADATA, "Authorization": f"Bearer {valid}"}
        )
        no_token(stolen)
        assert stolen.status_code == 403
    nothing_secret_logged(caplog, valid, forged, granted.json()["access_token"])


async def test_a_deleted_pods_address_given_to_another_pod(
    world: NmiWorld, nodes: list[str], make_proxy: MakeProxy
) -> None:
    old_name = unique("old")
    old = world.pod(old_name, selector="ledger", node=nodes[0])
    _, identity = world.msi("ledger", on_node=nodes[0])
    world.assign(old, identity)
    proxy = await make_proxy(nodes[0])
    address = pod_ip(old)
    async with client(proxy, address) as http:
        assert (await http.get(TOKEN_PATH, headers=METADATA)).status_code == 200
        world.core.delete_namespaced_pod(old_name, "default", grace_period_seconds=0)
        # The address goes to a new pod (no identity of its own), as the node's IPAM may do
        # once it is free; the kubelet reports it in the pod's status.
        new_name = unique("new")
        world.pod(new_name, node=nodes[0])
        world.core.patch_namespaced_pod_status(
            new_name, "default", {"status": {"podIP": address, "podIPs": [{"ip": address}]}}
        )
        await until(lambda: [p.name for p in proxy.view.pods_with_ip(address)] == [new_name], proxy)
        refused = await http.get(TOKEN_PATH, headers=METADATA)
    no_token(refused)


async def test_host_token_only_from_the_node_itself(
    world: NmiWorld, nodes: list[str], make_proxy: MakeProxy
) -> None:
    name = unique("hosted")
    pod = world.pod(name, selector="hosted", node=nodes[0])
    managed, identity = world.msi("hosted", on_node=nodes[0])
    world.assign(pod, identity)
    proxy = await make_proxy(nodes[0])
    headers = {"podname": name, "podns": "default"}
    path = "/host/token/?resource=https://vault.azure.net"
    async with client(proxy, pod_ip(pod)) as http:
        refused = await http.get(path, headers=headers)
    no_token(refused)
    assert refused.status_code == 403
    async with client(proxy, "127.0.0.1") as http:
        granted = await http.get(path, headers=headers)
    assert granted.status_code == 200
    assert granted.json()["clientid"] == managed.client_id
    assert unverified_claims(granted.json()["token"]["access_token"])["oid"] == managed.principal_id


async def test_instance_metadata_is_blocked_when_asked(
    world: NmiWorld, nodes: list[str], make_proxy: MakeProxy
) -> None:
    pod = world.pod(unique("instance"), node=nodes[0])
    open_proxy = await make_proxy(nodes[0])
    blocking = await make_proxy(nodes[0], block_instance_metadata=True)
    path = "/metadata/instance?api-version=2021-02-01"
    async with client(open_proxy, pod_ip(pod)) as http:
        forwarded = await http.get(path, headers=METADATA)
    assert forwarded.status_code == 200
    assert forwarded.json()["compute"]["vmScaleSetName"]
    async with client(blocking, pod_ip(pod)) as http:
        blocked = await http.get(path, headers=METADATA)
    assert blocked.status_code == 403
    assert "compute" not in blocked.text


# -- helpers ---------------------------------------------------------------------------------


async def until(predicate: Any, proxy: Any, timeout: float = 30.0) -> None:
    """Wait for the proxy's view to satisfy ``predicate`` (woken by the view, no polling)."""

    async def wait() -> None:
        while not predicate():
            await proxy.view.changed()

    await asyncio.wait_for(wait(), timeout)


async def raw_get(
    env: dict[str, str],
    target: bytes,
    headers: dict[str, str],
    *,
    source: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """Send ``GET target`` byte for byte (no client-side path normalisation) and read the answer."""
    host, port = env["AZURE_POD_IDENTITY_AUTHORITY_HOST"].removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(
        host, int(port), local_addr=(source, 0) if source else None
    )
    lines = [b"GET " + target + b" HTTP/1.1", b"Host: 169.254.169.254", b"Connection: close"]
    lines += [f"{k}: {v}".encode() for k, v in headers.items()]
    writer.write(b"\r\n".join(lines) + b"\r\n\r\n")
    await writer.drain()
    try:
        response = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = dict(line.lower().split(": ", 1) for line in header_lines if ": " in line)
    if parsed.get("transfer-encoding") == "chunked":
        body = _unchunk(body)
    return int(status_line.split()[1]), parsed, body


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return out
