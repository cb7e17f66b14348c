"""The emulator's RBAC authorizer: what one decision costs as the number of bindings grows.

Every HTTP request with a service-account token is decided by walking the ClusterRoleBindings
and the RoleBindings of its namespace (the real algorithm, no index). These figures say what
that walk costs with the bootstrap policy plus 1,000 RoleBindings over 100 namespaces, against
the admin's decision (``system:masters`` short-circuits) and against parsing the request's URL
into attributes, which every request pays anyway. Run: ``nox -s bench`` or
``pytest tests/benchmarks/bench_rbac.py -s -o python_files='bench_*.py'``.
"""

from __future__ import annotations

import asyncio

from podidentity.testing.kube import ADMIN_USER, APIServer, UserInfo
from podidentity.testing.kube._authz import attributes_of
from podidentity.testing.kube._rbac import RBACAuthorizer
from tests.benchmarks.harness import Case, Suite, quick

NAMESPACES = 20 if quick() else 100
PER_NAMESPACE = 10
RBAC = "rbac.authorization.k8s.io"


def _server() -> APIServer:
    api = APIServer()

    async def fill() -> None:
        for n in range(NAMESPACES):
            ns = f"ns-{n}"
            await api.create("namespaces", {"metadata": {"name": ns}})
            for b in range(PER_NAMESPACE):
                await api.create(
                    f"rolebindings.{RBAC}",
                    {
                        "metadata": {"name": f"b{b}", "namespace": ns},
                        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"},
                        "subjects": [{"kind": "ServiceAccount", "name": f"sa{b}", "namespace": ns}],
                    },
                )

    asyncio.run(fill())
    return api


def test_rbac_decisions(bench: Suite) -> None:
    api = _server()
    authorize = RBACAuthorizer(api.store)
    last = PER_NAMESPACE - 1
    robot = UserInfo(
        f"system:serviceaccount:ns-0:sa{last}",
        ("system:serviceaccounts", "system:serviceaccounts:ns-0", "system:authenticated"),
    )
    path = "/api/v1/namespaces/ns-0/pods"
    allowed = attributes_of(robot, "GET", path, {}, watch=False)
    denied = attributes_of(robot, "GET", "/api/v1/namespaces/ns-0/secrets", {}, watch=False)
    admin = attributes_of(ADMIN_USER, "GET", path, {}, watch=False)
    assert authorize(allowed).allowed
    assert not authorize(denied).allowed
    note = f"{NAMESPACES * PER_NAMESPACE} RoleBindings in {NAMESPACES} namespaces"
    bench.compare(
        "service account, allowed by the last binding of its namespace",
        Case("RBAC decision", lambda: authorize(allowed)),
        Case("admin decision (system:masters)", lambda: authorize(admin)),
        Case("URL to attributes", lambda: attributes_of(robot, "GET", path, {}, watch=False)),
        note=note,
    )
    bench.compare(
        "service account, denied (every binding walked)",
        Case("RBAC decision", lambda: authorize(denied)),
        Case("URL to attributes", lambda: attributes_of(robot, "GET", path, {}, watch=False)),
        note=note,
    )
