"""deploy/'s RBAC is least privilege, proven both ways in the sandbox.

Enough: the controller and the token proxies, running as the service accounts deploy/ binds
and holding only what its roles grant, complete the whole flow with no request refused.

No more: for every single permission those roles grant (each verb on each resource of each
API group of each rule), the same flow with just that permission taken away fails, and the
request the emulator refused is exactly the one that permission would have allowed.
"""

from __future__ import annotations

import pytest

from tests.deploy.flow import (
    PROOF_OF_POD_RBAC,
    RBAC_FILES,
    Permission,
    load,
    permissions,
    run_flow,
    without,
)

# A controller stopped while it retries a refused request can leave a socket to the garbage
# collector (cancellation inside the HTTP client); that is not what these tests judge.
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

RBAC = load(*RBAC_FILES)
PERMISSIONS = permissions(RBAC)
OPTIONAL = load(PROOF_OF_POD_RBAC)


def test_the_flow_completes_as_deploys_service_accounts_with_no_403() -> None:
    result = run_flow(RBAC)
    assert result.failed is None
    assert result.denied == []


def test_every_role_in_deploy_is_covered() -> None:
    roles = {f"{d['kind']}/{d['metadata']['name']}" for d in RBAC if d["kind"].endswith("Role")}
    assert roles == {
        "ClusterRole/podidentity-mic",
        "Role/podidentity-mic-leader-election",
        "ClusterRole/podidentity-nmi",
    }
    assert {p.role for p in PERMISSIONS} == roles
    # Nothing a rule grants escapes the matrix: no wildcards, no non-resource URLs.
    for doc in RBAC:
        for rule in doc.get("rules") or ():
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
            assert "nonResourceURLs" not in rule


def test_without_removes_exactly_one_permission() -> None:
    for gone in PERMISSIONS:
        left = permissions(without(RBAC, gone))
        assert {(p.role, p.group, p.resource, p.verb) for p in left} == {
            (p.role, p.group, p.resource, p.verb) for p in PERMISSIONS if p != gone
        }


@pytest.mark.slow
@pytest.mark.parametrize("gone", PERMISSIONS, ids=str)
def test_each_permission_is_needed(gone: Permission) -> None:
    result = run_flow(without(RBAC, gone))
    assert not result.ok, f"the flow needs no {gone}: take it out of deploy/"
    # The refusal is the one the missing permission explains, and nothing else was refused.
    assert result.denied_permissions == {(gone.group, gone.resource, gone.verb)}


def test_proving_the_pod_completes_with_the_optional_token_review_rule() -> None:
    result = run_flow([*RBAC, *OPTIONAL], proof_of_pod=True)
    assert result.failed is None
    assert result.denied == []


@pytest.mark.slow
@pytest.mark.parametrize("gone", permissions(OPTIONAL), ids=str)
def test_proving_the_pod_needs_each_optional_permission(gone: Permission) -> None:
    result = run_flow([*RBAC, *without(OPTIONAL, gone)], proof_of_pod=True)
    assert not result.ok
    assert result.denied_permissions == {(gone.group, gone.resource, gone.verb)}
