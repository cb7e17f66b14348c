"""Load upstream-style manifests, show what is wrong with them, and match a label selector.

Run: python examples/models_quickstart.py
"""

from __future__ import annotations

import sys

from podidentity.models import AzureIdentityBinding, LabelSelector, load_yaml

MANIFESTS = r"""
apiVersion: v1
kind: Secret
metadata:
  name: demo-sp
type: Opaque
data:
  clientSecret: Q0xJRU5UX1NFQ1JFVA==
---
# A pre-1.6 manifest, as many blog posts still show it: capitalised field names.
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentity
metadata:
  name: demo_aks_pod_id
spec:
  type: 0
  ResourceID: "/subscriptions/<SUBSCRIPTION_ID>/resourcegroups/<RESOURCE_GROUP>/providers/\
    Microsoft.ManagedIdentity/userAssignedIdentities/<IDENTITY_NAME>"
  ClientID: CLIENT_ID
---
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentityBinding
metadata:
  name: demo-binding
spec:
  azureIdentity: demo_aks_pod_id
  selector: demo
  labelSelector:
    matchExpressions:
      - {key: tier, operator: In, values: [web, api]}
---
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentity
metadata:
  name: federated
  namespace: apps
spec:
  type: 3
  clientID: 11111111-2222-3333-4444-555555555555
  tenantID: 66666666-7777-8888-9999-000000000000
"""


def main() -> int:
    objects = load_yaml(MANIFESTS)
    for obj in objects:
        if isinstance(obj, dict):  # not one of our kinds: kept as a plain dict
            print(f"{obj['kind']} {obj['metadata']['name']} (kept as a dict)")
            continue
        print(f"{obj.kind} {obj.name}")
        for problem in obj.problems():
            print(f"    {problem}")
        if not obj.problems():
            print("    no problems")

    binding = next(o for o in objects if isinstance(o, AzureIdentityBinding))
    pod_labels = {"aadpodidbinding": "demo", "tier": "web"}
    print(f"binding matches {pod_labels}: {binding.matches(pod_labels, service_account='default')}")

    selector = LabelSelector.parse("app=web, tier in (a,b), !legacy")
    print(f"selector {selector} -> ?{selector.to_query()}")
    print("matches app=web,tier=a:", selector.matches({"app": "web", "tier": "a"}))
    print("matches app=web,legacy=1:", selector.matches({"app": "web", "legacy": "1"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
