"""deploy/: every manifest passes the emulator's strict server-side dry run, and the pieces agree.

The dry runs go through the real kubectl (``--validate=strict``, its default) against the
Kubernetes emulator, which decodes built-in kinds as the real server does (unknown fields
and wrong types refused) and validates workloads, PodDisruptionBudgets and RBAC objects.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from podidentity.crds import CRD_FILES
from podidentity.nmi import TokenProxySettings
from podidentity.testing.kube import KubeEmulator
from tests.deploy.flow import DEPLOY, LEASE, NAMESPACE, load
from tests.kubectl import Kubectl, run_kubectl

ROOT = DEPLOY.parent
MANIFESTS = sorted(
    p.relative_to(DEPLOY).as_posix()
    for p in DEPLOY.rglob("*.yaml")
    if p.name != "kustomization.yaml"
)


@pytest.fixture(scope="module")
def kubectl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    home = tmp_path_factory.mktemp("kubectl-home")
    with KubeEmulator(tls=True) as kube:

        def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
            return run_kubectl(kube.kubeconfig_path, home, *args, stdin=stdin)

        # A dry run creates nothing, so the namespace the others live in must exist for real.
        created = run("apply", "-f", str(DEPLOY / "namespace.yaml"))
        assert created.returncode == 0, created.stderr
        yield run


def test_every_manifest_is_listed() -> None:
    assert "namespace.yaml" in MANIFESTS
    assert {f"crds/{name}" for name in CRD_FILES.values()} <= set(MANIFESTS)
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    optional = [m for m in MANIFESTS if m.startswith("optional/")]
    assert optional == ["optional/nmi-token-review.yaml"]
    assert sorted(kustomization["resources"]) == [m for m in MANIFESTS if m not in optional]


@pytest.mark.parametrize("manifest", MANIFESTS)
def test_server_dry_run_accepts(kubectl: Kubectl, manifest: str) -> None:
    result = kubectl("apply", "--dry-run=server", "-f", str(DEPLOY / manifest))
    assert result.returncode == 0, result.stderr
    documents = [d for d in yaml.safe_load_all((DEPLOY / manifest).read_text()) if d]
    assert result.stdout.count("(server dry run)") == len(documents), result.stdout
    assert "unknown field" not in result.stderr


def test_server_dry_run_of_the_kustomization(kubectl: Kubectl) -> None:
    result = kubectl("apply", "--dry-run=server", "-k", str(DEPLOY))
    assert result.returncode == 0, result.stderr
    kustomized = [m for m in MANIFESTS if not m.startswith("optional/")]
    assert result.stdout.count("(server dry run)") == len(load(*kustomized)), result.stdout


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        (lambda ds: ds["spec"]["template"]["spec"].update(hostnetwork=True), "unknown field"),
        (
            lambda ds: ds["spec"]["template"]["spec"].update(hostNetwork="yes"),
            "cannot unmarshal string",
        ),
    ],
    ids=["unknown-field", "wrong-type"],
)
def test_the_dry_run_is_strict(
    kubectl: Kubectl, change: Callable[[dict[str, Any]], None], refusal: str
) -> None:
    """Control: the same dry run refuses a misspelt or mistyped field in our DaemonSet."""
    (daemonset,) = load("nmi-daemonset.yaml")
    change(daemonset)
    result = kubectl("apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(daemonset))
    assert result.returncode != 0
    assert refusal in result.stderr


def test_the_crds_are_podidentitys_own() -> None:
    """deploy/crds is a copy (kustomize cannot reach outside deploy/): regenerate it with
    ``python -m podidentity.crds --dir deploy/crds``."""
    package = ROOT / "podidentity" / "crds"
    for name in CRD_FILES.values():
        assert (DEPLOY / "crds" / name).read_bytes() == (package / name).read_bytes(), name


# -- the pieces agree -----------------------------------------------------------------------


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in load(*MANIFESTS) if d["kind"] == kind]


def workload(kind: str) -> dict[str, Any]:
    (found,) = by_kind(kind)
    return found


def container(kind: str) -> dict[str, Any]:
    (found,) = workload(kind)["spec"]["template"]["spec"]["containers"]
    return dict(found)


def env(kind: str) -> dict[str, Any]:
    return {e["name"]: e for e in container(kind).get("env", ())}


def version() -> str:
    return importlib.metadata.version("podidentity")


def test_one_image_with_the_projects_version() -> None:
    images = {container(kind)["image"] for kind in ("Deployment", "DaemonSet")}
    assert images == {f"podidentity:{version()}"}
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert kustomization["images"] == [{"name": "podidentity", "newTag": version()}]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f"-t podidentity:{version()} ." in dockerfile


def test_the_dockerfiles_entry_point_is_the_podidentity_command() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["podidentity"]' in dockerfile
    (script,) = importlib.metadata.entry_points(group="console_scripts", name="podidentity")
    assert script.value == "podidentity.cli:main"
    # Everything the build copies exists and is let through .dockerignore.
    ignore = (ROOT / ".dockerignore").read_text().split()
    for copied in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, flags=re.M):
        for source in copied.split():
            assert (ROOT / source).exists(), source
            assert f"!{source}" in ignore or f"!{source}/" in ignore, source
    # The default user is not root; only the token proxy's DaemonSet overrides it.
    assert re.search(r"^USER 65532:65532$", dockerfile, flags=re.M)


def _command(name: str) -> Any:
    from podidentity.cli import main

    command = main.commands.get(name)
    if command is None:  # pragma: no cover - until `podidentity mic|nmi` are merged
        pytest.skip(f"`podidentity {name}` is not in this tree yet (branch cli-run)")
    return command


@pytest.mark.parametrize(("kind", "name"), [("Deployment", "mic"), ("DaemonSet", "nmi")])
def test_container_args_and_environment_name_real_options(kind: str, name: str) -> None:
    assert container(kind)["args"] == [name]
    command = _command(name)
    options = {f"PODIDENTITY_{name.upper()}_{p.name.upper()}" for p in command.params if p.name}
    options.update(
        e
        for p in command.params
        for e in ([p.envvar] if isinstance(p.envvar, str) else p.envvar or ())
    )
    options.add("PODIDENTITY_LOG_FORMAT")
    helpers = {"HOST_IP"}  # referenced as $(HOST_IP) by the variables after it
    assert set(env(kind)) - helpers <= options


def test_controller_runs_unprivileged_with_a_renewed_lease_it_may_write() -> None:
    deployment = workload("Deployment")
    spec = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    assert spec["affinity"]["podAntiAffinity"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = container("Deployment")["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert {"livenessProbe", "readinessProbe", "resources"} <= set(container("Deployment"))
    # The Lease it is told to use is the one its Role names, in its own namespace.
    assert env("Deployment")["PODIDENTITY_MIC_LEASE_NAME"]["value"] == LEASE
    (role,) = by_kind("Role")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert [r.get("resourceNames") for r in role["rules"]] == [None, [LEASE]]
    # The token proxy knows the controller's pods by namespace and labels.
    labels = spec and deployment["spec"]["template"]["metadata"]["labels"]
    assert dict(TokenProxySettings().controller_labels).items() <= labels.items()
    (pdb,) = by_kind("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_token_proxy_has_only_net_admin_and_knows_its_node() -> None:
    spec = workload("DaemonSet")["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert spec["tolerations"] == [{"operator": "Exists"}]
    context = container("DaemonSet")["securityContext"]
    assert context["capabilities"] == {"drop": ["ALL"], "add": ["NET_ADMIN"]}
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert "privileged" not in context
    variables = env("DaemonSet")
    assert variables["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert variables["PODIDENTITY_NMI_USE_IPTABLES"]["value"] == "true"
    assert {"livenessProbe", "readinessProbe", "resources"} <= set(container("DaemonSet"))


def test_workloads_run_as_the_service_accounts_rbac_binds() -> None:
    accounts = {
        (d["metadata"]["namespace"], d["metadata"]["name"]) for d in by_kind("ServiceAccount")
    }
    for kind in ("Deployment", "DaemonSet"):
        item = workload(kind)
        used = (
            item["metadata"]["namespace"],
            item["spec"]["template"]["spec"]["serviceAccountName"],
        )
        assert used in accounts
    subjects = {
        (s["namespace"], s["name"])
        for d in by_kind("ClusterRoleBinding") + by_kind("RoleBinding")
        for s in d["subjects"]
    }
    assert subjects == accounts
    namespaced = [d for d in load(*MANIFESTS) if "namespace" in d["metadata"]]
    assert {d["metadata"]["namespace"] for d in namespaced} == {NAMESPACE}


@pytest.mark.parametrize("name", ["mic", "nmi"])
def test_the_variables_docs_deploy_names_are_real_options(name: str) -> None:
    command = _command(name)
    options = {f"PODIDENTITY_{name.upper()}_{p.name.upper()}" for p in command.params if p.name}
    text = (ROOT / "docs" / "deploy.md").read_text()
    named = set(re.findall(rf"PODIDENTITY_{name.upper()}_[A-Z_]+", text))
    assert named
    assert named <= options


def test_docs_deploy_explains_every_permission_and_no_other() -> None:
    from tests.deploy.flow import RBAC_FILES, permissions

    text = (ROOT / "docs" / "deploy.md").read_text()
    documented = set()
    account = ""
    for line in text.splitlines():
        heading = re.match(r"^\*\*`(podidentity-\w+)`\*\*", line)
        if heading:
            account = heading[1]
        cells = [c.strip() for c in line.strip("|").split("|")]
        if not account or not line.startswith("| ") or len(cells) != 4 or "`" not in cells[1]:
            continue
        group = "" if cells[0] == "core" else cells[0].strip("`")
        resources = re.findall(r"`([a-z/]+)`", re.split(r"\(|, `resourceNames", cells[1])[0])
        for resource in resources:
            for verb in cells[2].split(", "):
                documented.add((account, group, resource, verb))
        if line.startswith("| core | `serviceaccounts/token`"):
            account = ""  # the last row of the last table
    granted = {
        ("podidentity-" + p.role.split("podidentity-")[1][:3], p.group, p.resource, p.verb)
        for p in permissions(load(*RBAC_FILES))
    }
    assert documented == granted
