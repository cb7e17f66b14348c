"""Both commands as an operator runs them: ``podidentity mic`` and ``podidentity nmi`` as two
processes against one sandbox; a pod's token request that arrives before its identity is
assigned waits for the controller, then gets the token."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

import httpx
import pytest

from podidentity.testing import Sandbox
from tests.cli.conftest import (
    ENDPOINTS,
    PROBES,
    Command,
    assigned_states,
    base_env,
    binding_manifest,
    controller_principal,
    identity_manifest,
    pod_manifest,
    running_pod,
    token_request,
)
from tests.waiting import eventually


@pytest.mark.timeout(300)  # child processes start slowly on a loaded machine
def test_a_pod_waits_for_the_controller_then_gets_its_token(
    world: Sandbox, run: Callable[..., Command]
) -> None:
    identity = world.azure.world.add_managed_identity("web-id")
    world.kube.create(identity_manifest("web-id", identity.resource_id, identity.client_id))
    world.kube.create(pod_manifest("web", aadpodidbinding="web"))
    pod = running_pod(world, "web")
    node = pod["spec"]["nodeName"]

    nmi = run(
        "nmi",
        "--kubeconfig",
        str(world.kube.kubeconfig_path),
        "--imds-url",
        world.imds_url(node),
        "--port",
        "0",
        "--probe-port",
        "0",
        "--pending-timeout",
        "240",
        env=base_env(NODE_NAME=node),
        name="nmi",
    )
    tokens, probes = nmi.wait_for(ENDPOINTS).groups()
    eventually(lambda: httpx.get(f"{probes}/readyz").status_code == 200)

    # The pod asks before anything binds it: the request waits on the proxy's watch.
    answers: list[httpx.Response] = []
    asking = threading.Thread(
        target=lambda: answers.append(token_request(tokens, pod["status"]["podIP"]))
    )
    asking.start()
    world.kube.create(binding_manifest("web-binding", "web-id", "web"))
    app = controller_principal(world)
    mic_env = base_env(
        **world.environ(),
        AZURE_CLIENT_ID=app.client_id,
        AZURE_CLIENT_SECRET=app.secret,
        AZURE_TENANT_ID=world.azure.tenant_id,
    )
    mic = run(
        "mic",
        "--kubeconfig",
        str(world.kube.kubeconfig_path),
        "--probe-address",
        "127.0.0.1",
        "--probe-port",
        "0",
        env=mic_env,
        name="mic",
    )
    mic.wait_for(PROBES.pattern)
    asking.join(280)
    assert not asking.is_alive()
    assert assigned_states(world) == {"web-default-web-id": "Assigned"}
    (answer,) = answers
    assert answer.status_code == 200, answer.text
    assert answer.json()["client_id"] == identity.client_id

    assert mic.terminate(signal.SIGTERM) == 0
    assert nmi.terminate(signal.SIGTERM) == 0
    for command in (mic, nmi):
        output = command.stdout + command.stderr
        assert answer.json()["access_token"] not in output
        assert app.secret not in output
        assert "Traceback" not in output
