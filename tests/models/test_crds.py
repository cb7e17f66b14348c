"""The shipped CRDs: up to date, a structural superset of upstream's, and our output fits."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import given, settings

from podidentity.crds import CRD_FILES, load_crd, load_crds
from podidentity.crds.__main__ import main
from podidentity.crds._generate import check
from podidentity.models import KINDS, parse
from tests.models.strategies import resource_dicts

UPSTREAM_CRDS = (
    Path(__file__).resolve().parents[1]
    / "compat"
    / "aad-pod-identity"
    / "config_crd_aadpodidentity.k8s.io.yaml"
)
CRD_DIR = Path(__file__).resolve().parents[2] / "podidentity" / "crds"


@functools.cache  # parsing upstream's YAML per hypothesis example was most of this module's time
def upstream_schemas() -> dict[str, dict[str, Any]]:
    crds = yaml.safe_load_all(UPSTREAM_CRDS.read_text())
    return {
        c["spec"]["names"]["kind"]: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for c in crds
    }


def our_schema(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = load_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def to_draft7(schema: Any) -> Any:
    """OpenAPI v3 (Kubernetes flavour) to JSON Schema: ``nullable`` becomes a null type."""
    if isinstance(schema, list):
        return [to_draft7(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        k: to_draft7(v)
        for k, v in schema.items()
        if not k.startswith("x-kubernetes-") and k != "nullable"
    }
    if schema.get("nullable") and "type" in schema:
        out["type"] = [schema["type"], "null"]
    return out


def type_paths(schema: dict[str, Any], path: str = "") -> dict[str, str]:
    found = {path: schema.get("type", "")}
    for name, sub in schema.get("properties", {}).items():
        found |= type_paths(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        found |= type_paths(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        found |= type_paths(schema["additionalProperties"], f"{path}{{}}")
    return found


def test_shipped_crds_are_up_to_date() -> None:
    diff = check(CRD_DIR)
    assert diff == "", f"run `python -m podidentity.crds`:\n{diff}"


def test_check_mode_reports_stale_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dir", str(tmp_path)]) == 0
    assert main(["--dir", str(tmp_path), "--check"]) == 0
    stale = tmp_path / CRD_FILES["AzureIdentity"]
    stale.write_text(stale.read_text().replace("clientID", "clientId"))
    capsys.readouterr()
    assert main(["--dir", str(tmp_path), "--check"]) == 1
    out = capsys.readouterr().out
    assert "-" in out
    assert "+" in out
    assert "stale" in out


def test_load_crds_gives_one_namespaced_v1_crd_per_kind() -> None:
    crds = load_crds()
    assert [c["spec"]["names"]["kind"] for c in crds] == sorted(KINDS)
    for crd in crds:
        kind = crd["spec"]["names"]["kind"]
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
        assert crd["metadata"]["name"] == f"{KINDS[kind].plural}.aadpodidentity.k8s.io"
        assert crd["spec"]["scope"] == "Namespaced"
        assert crd["spec"]["names"]["listKind"] == f"{kind}List"
        (version,) = crd["spec"]["versions"]
        assert (version["name"], version["served"], version["storage"]) == ("v1", True, True)
    load_crds()[0]["spec"] = None
    assert load_crds()[0]["spec"] is not None  # fresh dicts each time


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_our_schema_is_a_structural_superset_of_upstream(kind: str) -> None:
    upstream = type_paths(upstream_schemas()[kind])
    ours = type_paths(our_schema(kind))
    missing = {p: t for p, t in upstream.items() if p not in ours}
    assert not missing
    differ = {p: (t, ours[p]) for p, t in upstream.items() if ours[p] != t}
    assert not differ


def test_our_schemas_are_structural() -> None:
    """Every node has a type (Kubernetes' structural rule), except where upstream had none."""
    for kind in KINDS:
        for path, node_type in type_paths(our_schema(kind)).items():
            assert node_type, f"{kind}{path} has no type"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_extensions_are_declared(kind: str) -> None:
    paths = type_paths(our_schema(kind))
    if kind == "AzureIdentityBinding":
        assert paths[".spec.labelSelector.matchExpressions[].values[]"] == "string"
        assert paths[".spec.serviceAccountNames"] == "array"
    if kind == "AzureIdentity":
        assert our_schema(kind)["properties"]["spec"]["properties"]["type"]["maximum"] == 3
        assert paths[".spec.ClientID"] == "string"  # legacy spelling, so it is not pruned


@settings(max_examples=60, deadline=None)
@given(resource_dicts)
def test_to_dict_validates_against_upstream_and_our_schema(data: dict[str, Any]) -> None:
    model = parse(data)
    out = model.to_dict()
    for validator in _validators(model.kind):
        validator.validate(out)


@functools.cache
def _validators(kind: str) -> tuple[jsonschema.Draft7Validator, ...]:
    """Upstream's and our schema of ``kind`` as validators, built once."""
    return tuple(
        jsonschema.Draft7Validator(to_draft7(schema))
        for schema in (upstream_schemas()[kind], our_schema(kind))
    )


def test_a_wrong_type_fails_our_schema() -> None:
    validator = jsonschema.Draft7Validator(to_draft7(our_schema("AzureIdentity")))
    assert not validator.is_valid({"spec": {"type": 7}})
    assert not validator.is_valid({"spec": {"clientID": 5}})
    assert validator.is_valid({"spec": {"type": 3, "clientID": "c"}})
