"""``ControllerRunner``: the controller wired for real use, in process against a sandbox.

Its probes are served over real HTTP, and ``arm_endpoint`` sends ARM requests to the
emulator's own address with no routing proxy at all, so an ARM call that ignored it could not
reach anything.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import httpx
import pytest
from azure.identity.aio import ClientSecretCredential

from podidentity.kube import load_api_client
from podidentity.reconciler import ControllerRunner, ControllerSettings
from podidentity.testing import Sandbox
from tests.e2e.test_controller import pod_manifest, setup_seed


async def eventually(check: Any, within: float = 60.0) -> Any:
    """Poll ``check`` (sync, run off the loop) until truthy; the bound only ends hangs."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"never held: {check}")
        await asyncio.sleep(0.05)


async def test_runner_serves_probes_and_sends_arm_requests_to_its_endpoint() -> None:
    async with Sandbox(operation_duration=0, propagation_delay=0) as world:
        world.add_node_pool("pool", count=1)
        app = world.azure.world.add_service_principal("runner")
        world.azure.world.grant_role(
            app, world.node_resource_group_id, "Virtual Machine Contributor"
        )
        identity = setup_seed(world)
        world.azure.world.grant_role(app, identity, "Managed Identity Operator")
        world.kube.create(pod_manifest("web", aadpodidbinding="web"))
        api = await load_api_client(world.kube.kubeconfig_path, in_cluster=False)
        credential = ClientSecretCredential(
            world.azure.tenant_id,
            app.client_id,
            app.secret,
            authority=world.azure.authority,
            **world.azure.client_kwargs(),
        )
        # Requests to management.azure.com go through the routing proxy (ARM's long-running
        # operations name that host), anything else goes direct: the requests that reach ARM
        # directly are the ones sent to arm_endpoint.
        verify = ssl.create_default_context(cafile=str(world.azure.ca_bundle))
        routed = httpx.AsyncHTTPTransport(proxy=world.azure.proxy.url, verify=verify)
        direct = httpx.AsyncHTTPTransport(verify=verify)
        http = httpx.AsyncClient(
            mounts={"https://management.azure.com": routed, "all://": direct},
            trust_env=False,
            timeout=30,
        )
        runner = ControllerRunner(
            api,
            credential,
            ControllerSettings(leader_election=False, resync_interval=1, retry_max_delay=2),
            http_client=http,
            arm_endpoint=world.azure.arm.url + "/",
            probe_port=0,
        )
        assert runner.probe_url is None
        task = asyncio.ensure_future(runner.run())
        try:
            async with httpx.AsyncClient(trust_env=False) as probes:
                while runner.probe_url is None:
                    assert not task.done(), task
                    await asyncio.sleep(0.01)
                assert (await probes.get(f"{runner.probe_url}/healthz")).status_code == 200

                def assigned() -> bool:
                    items = world.kube.list("azureassignedidentities", namespace="default")
                    return [(i.get("status") or {}).get("status") for i in items] == ["Assigned"]

                await eventually(assigned)
                pool = next(iter(world.nodes.values())).compute.name
                assert identity.resource_id.lower() in world.azure.world.vmss(pool).user_assigned
                assert (await probes.get(f"{runner.probe_url}/readyz")).status_code == 200
                arm_host = world.azure.arm.url.removeprefix("https://")
                direct_writes = [
                    r
                    for r in world.azure.arm.log.records
                    if r.method == "PATCH" and r.headers.get("host") == arm_host
                ]
                assert direct_writes, "no ARM write was sent to arm_endpoint"
                metrics = (await probes.get(f"{runner.probe_url}/metrics")).text
                assert (
                    'podidentity_arm_request_duration_seconds_count{operation="patch"}' in metrics
                )
                url = runner.probe_url
                runner.stop()
                await asyncio.wait_for(task, 60)
                with pytest.raises(httpx.ConnectError):
                    await probes.get(f"{url}/healthz")
        finally:
            runner.stop()
            await asyncio.gather(task, return_exceptions=True)
            await http.aclose()
            await credential.close()
            await api.close()
