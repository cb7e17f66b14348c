"""Token proxy: the cached path over real sockets, a cold-cache burst, and the first token.

* **Cached path** at 1, 16 and 64 concurrent keep-alive connections, each connecting from a
  pod's IP: requests per second and p50/p99 latency of the token proxy next to a bare ASGI
  endpoint that answers the same-size JSON, served by the same uvicorn configuration on the
  same background loop and driven by the same load generator in the same run. The ratio is
  proxy time / bare time for the same number of requests (lower is better; 1/ratio is the
  throughput fraction, goal >= 0.7).
* **Cold cache**: 1,000 concurrent requests for one (identity, resource) with an empty cache;
  the note records how many upstream calls they caused (goal: exactly 1).
* **First token** from pod creation in a sandbox with the real controller and token proxies:
  federated identities (goal p99 < 1 s) and user-assigned ones beyond the ARM write and IMDS
  propagation (goal < 200 ms on top).

For the first two, the proxy's node view is an in-memory ``NodeView`` and its token source
returns a fixed token after the first call: the figures are the proxy's own cost (routing,
caller lookup, identity selection, cache, response), not the emulators'. Nothing is asserted
about time. Run: ``nox -s bench`` or
``pytest tests/benchmarks/bench_nmi.py -s -o python_files='bench_*.py'``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import attrs
import httpx
import pytest

from podidentity.azure.tokens import AccessToken
from podidentity.models import (
    AssignedIdentityState,
    AzureAssignedIdentity,
    AzureIdentity,
    AzureIdentityBinding,
    AzurePodIdentityException,
    ObjectMeta,
)
from podidentity.models.assigned import AssignedIdentityStatus
from podidentity.nmi import TokenProxy
from podidentity.nmi.callers import PodInfo
from podidentity.nmi.server import _listen, _server
from podidentity.testing._server import ServerThread
from tests.benchmarks.harness import Case, Suite, percentile, quick
from tests.benchmarks.loadgen import LoadGenerator, LoadResult

NODE = "node-0"
POD_IP = "127.10.200.7"
CLIENT_ID = "6f2a0c1e-1111-4c3b-9e5d-0123456789ab"
PATH = (
    "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net"
    f"&client_id={CLIENT_ID}"
)
REQUEST = f"GET {PATH} HTTP/1.1\r\nHost: 169.254.169.254\r\nMetadata: true\r\n\r\n".encode()
CONNECTIONS = (1, 16, 64)
REQUESTS = {1: 100, 16: 480, 64: 960}


@attrs.define
class StaticView:
    """One pod with one assigned identity, as the informers would hold them."""

    pod_info: PodInfo
    record: AzureAssignedIdentity
    node_name: str = NODE
    synced: bool = True

    def pods_with_ip(self, ip: str) -> list[PodInfo]:
        return [self.pod_info] if ip == self.pod_info.ip else []

    def pod(self, namespace: str, name: str) -> PodInfo | None:
        match = (namespace, name) == (self.pod_info.namespace, self.pod_info.name)
        return self.pod_info if match else None

    def assignments(self, namespace: str, name: str) -> list[AzureAssignedIdentity]:
        return [self.record] if self.pod(namespace, name) else []

    def exceptions(self, namespace: str) -> list[AzurePodIdentityException]:
        return []

    async def changed(self) -> None:
        await asyncio.Event().wait()


class FixedSource:
    """Answers every token request with one token (a real JWT's size), counting calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def token(self, identity: AzureIdentity, pod: PodInfo, resource: str) -> AccessToken:
        self.calls += 1
        await asyncio.sleep(0.001)  # an upstream round trip, so concurrent callers overlap
        return AccessToken("x" * 1400, int(time.time()) + 86_400, resource, CLIENT_ID)

    async def node_token(self, parameter: Any, resource: str) -> AccessToken:
        raise AssertionError("no node identities in this benchmark")


def make_proxy() -> tuple[TokenProxy, FixedSource]:
    identity = AzureIdentity(
        metadata=ObjectMeta(name="orders", namespace="default"),
        client_id=CLIENT_ID,
        resource_id="/subscriptions/0/resourceGroups/g/providers/"
        "Microsoft.ManagedIdentity/userAssignedIdentities/orders",
    )
    binding = AzureIdentityBinding(
        metadata=ObjectMeta(name="orders", namespace="default"),
        azure_identity="orders",
        selector="orders",
    )
    record = attrs.evolve(
        AzureAssignedIdentity.create(
            identity=identity, binding=binding, pod="web", pod_namespace="default", node_name=NODE
        ),
        status=AssignedIdentityStatus(state=AssignedIdentityState.ASSIGNED),
    )
    pod = PodInfo(
        namespace="default",
        name="web",
        uid="uid-web",
        ip=POD_IP,
        labels={"aadpodidbinding": "orders"},
        phase="Running",
        node_name=NODE,
    )
    source = FixedSource()
    return TokenProxy(NODE, view=StaticView(pod, record), sources=source), source


async def bare(scope: Any, receive: Any, send: Any) -> None:
    """The baseline: a bare ASGI endpoint answering JSON of the proxy's answer size."""
    body = b'{"access_token":"' + b"x" * 1400 + b'","expires_in":"86399"}' + b" " * 180
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[int, int, TokenProxy]]:
    proxy, _ = make_proxy()
    thread = ServerThread("bench-nmi")
    thread.start()
    ports = []
    tasks: list[Any] = []
    running: list[Any] = []

    async def serve(app: Any) -> int:
        sock = _listen("127.0.0.1", 0)
        server = _server(app, 30)
        running.append(server)
        tasks.append(asyncio.ensure_future(server.serve(sockets=[sock])))
        while not server.started:
            await asyncio.sleep(0.005)
        return int(sock.getsockname()[1])

    for app in (proxy, bare):
        ports.append(thread.call(serve(app)))

    async def stop() -> None:
        for server in running:
            server.should_exit = True
        await asyncio.wait(tasks, timeout=10)

    try:
        yield ports[0], ports[1], proxy
    finally:
        thread.call(stop())
        thread.stop()


@pytest.fixture(scope="module")
def generator() -> Iterator[LoadGenerator]:
    load = LoadGenerator()
    try:
        yield load
    finally:
        load.close()


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("connections", CONNECTIONS)
def test_cached_path(
    bench: Suite,
    servers: tuple[int, int, TokenProxy],
    generator: LoadGenerator,
    connections: int,
) -> None:
    proxy_port, bare_port, proxy = servers
    total = connections * 8 if quick() else REQUESTS[connections]

    def run(port: int, requests: int) -> LoadResult:
        return generator.run(
            port, connections=connections, total=requests, request=REQUEST, source_ip=POD_IP
        )

    run(proxy_port, 1)  # fill the cache
    # Latency and rate come from one longer run of each, after the timed rounds' warm-up.
    comparison = bench.compare(
        f"cached token, {connections} connection(s), {total} requests",
        Case("token proxy", lambda: run(proxy_port, total)),
        Case("bare ASGI endpoint", lambda: run(bare_port, total)),
    )
    figures = {
        name: run(port, total * 4) for name, port in (("proxy", proxy_port), ("bare", bare_port))
    }
    note = ", ".join(f"{name}: {result.summary()}" for name, result in figures.items())
    bench.results[-1] = dataclasses.replace(bench.results[-1], note=note)
    assert comparison.ratios
    assert proxy.cache.upstream_calls == 1


@pytest.mark.timeout(600)
def test_cold_cache_burst(bench: Suite) -> None:
    burst = 200 if quick() else 1000
    calls: list[int] = []

    async def run() -> None:
        proxy, source = make_proxy()
        transport = httpx.ASGITransport(app=proxy, client=(POD_IP, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://imds") as http:
            answers = await asyncio.gather(
                *(http.get(PATH, headers={"Metadata": "true"}) for _ in range(burst))
            )
        assert {a.status_code for a in answers} == {200}
        calls.append(source.calls)

    timing = bench.measure(
        f"cold cache, {burst} concurrent requests (in process)",
        lambda: asyncio.run(run()),
    )
    assert set(calls) == {1}, calls
    assert timing.median > 0


# -- first token from pod creation, with every real component -----------------------------------

OPERATION = 0.5  # seconds an ARM identity write takes in this scenario
PROPAGATION = 1.0  # seconds IMDS lags behind it


@pytest.mark.timeout(1800)
def test_first_token_from_pod_creation(request: pytest.FixtureRequest) -> None:
    """Pod created → first token in the pod, through the controller and the token proxy.

    Each pod has its own new identity, so an MSI pod always waits for an ARM write and IMDS
    propagation (shortened here to 0.5 s and 1 s; the figure reported is what comes on top).
    A federated pod needs no ARM write. The clock is wall time: the path waits on purpose.
    """
    from azure.identity import ManagedIdentityCredential

    from podidentity.models import IdentityType
    from podidentity.nmi import TokenProxySettings
    from podidentity.reconciler import ControllerSettings
    from podidentity.testing import Sandbox
    from tests.benchmarks.conftest import results_directory

    count = 5 if quick() else 30
    suite = Suite("nmi_first_token", rounds=1, clock=time.perf_counter)
    latencies: dict[str, list[float]] = {"federated": [], "user-assigned": []}

    def one_pod(world: Sandbox, kind: str, index: int) -> float:
        name = f"{kind[:3]}-{index}"
        managed = world.azure.world.add_managed_identity(f"first-token-{name}")
        if kind == "federated":
            world.kube.create(
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": name, "namespace": "default"},
                }
            )
            world.federate(managed, namespace="default", service_account=name)
            identity = AzureIdentity(
                metadata=ObjectMeta(name=name, namespace="default"),
                type=IdentityType.FEDERATED_WORKLOAD_IDENTITY,
                client_id=managed.client_id,
                tenant_id=world.azure.tenant_id,
            )
        else:
            identity = AzureIdentity(
                metadata=ObjectMeta(name=name, namespace="default"),
                type=IdentityType.USER_ASSIGNED_MSI,
                client_id=managed.client_id,
                resource_id=managed.resource_id,
            )
        binding = AzureIdentityBinding(
            metadata=ObjectMeta(name=name, namespace="default"), azure_identity=name, selector=name
        )
        world.kube.create(identity.to_dict())
        world.kube.create(binding.to_dict())
        spec: dict[str, Any] = {"containers": [{"name": "app", "image": "example.com/app:1"}]}
        if kind == "federated":
            spec["serviceAccountName"] = name
        started = time.perf_counter()
        world.kube.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": "default",
                    "labels": {"aadpodidbinding": name},
                },
                "spec": spec,
            }
        )
        with world.as_pod(name):
            credential = ManagedIdentityCredential(client_id=managed.client_id)
            credential.get_token("https://vault.azure.net/.default")
        return time.perf_counter() - started

    def scenario() -> None:
        with Sandbox(operation_duration=OPERATION, propagation_delay=PROPAGATION) as world:
            world.add_node_pool("agents", count=2)
            controller = world.start_controller(ControllerSettings(leader_election=False))
            asyncio.run(controller.wait_synced())  # a cold start is not what is measured
            world.start_token_proxies(TokenProxySettings(pending_timeout=30.0))
            for kind, found in latencies.items():
                found.clear()  # the harness's warm-up run went first; keep the timed run's
                found.extend(one_pod(world, kind, index) for index in range(count))

    suite.measure(f"{count} federated then {count} user-assigned pods, one at a time", scenario)
    federated, msi = latencies["federated"], latencies["user-assigned"]
    beyond = [t - OPERATION - PROPAGATION for t in msi]
    note = (
        f"federated: p50 {percentile(federated, 0.5) * 1000:.0f} ms,"
        f" p99 {percentile(federated, 0.99) * 1000:.0f} ms;"
        f" user-assigned beyond ARM {OPERATION:g} s + IMDS {PROPAGATION:g} s:"
        f" p50 {percentile(beyond, 0.5) * 1000:.0f} ms,"
        f" p99 {percentile(beyond, 0.99) * 1000:.0f} ms"
    )
    print(f"\nfirst token: {note}")
    suite.results[-1] = dataclasses.replace(suite.results[-1], note=note)
    print(suite.table())
    suite.write(results_directory(request.config), merge=True)
