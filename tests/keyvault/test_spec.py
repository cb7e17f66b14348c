"""VaultObject and load_spec: pure validation, every error naming the object and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podidentity.errors import ValidationError
from podidentity.keyvault import FetchSettings, VaultObject, load_spec
from podidentity.keyvault._core import Listed, ListProperties, ObjectState, stale_objects
from podidentity.keyvault._spec import check_output_name

SPEC = """
vault: orders-kv
objects:
  - name: db-password
    alias: DB_PASSWORD
  - name: tls
    type: certificate
    alias: tls.crt
    keyAlias: tls.key
  - name: signing
    type: key
    vault: https://Other-KV.vault.azure.net/
  - name: history
    versionHistory: 3
    mode: "0640"
  - name: settings
    split: yaml
"""


def test_a_spec_loads_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    objects = load_spec(path)
    assert [o.output_names() for o in objects] == [
        ("DB_PASSWORD",),
        ("tls.crt", "tls.key"),
        ("signing",),
        ("history/0", "history/1", "history/2"),
        (),
    ]
    assert objects[3].mode == 0o640
    assert FetchSettings().url(objects[2]) == "https://other-kv.vault.azure.net"
    assert FetchSettings(vault_suffix="vault.azure.cn").url(objects[0]) == (
        "https://orders-kv.vault.azure.cn"
    )
    assert load_spec(SPEC) == objects
    assert load_spec(str(path)) == objects


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("objects: []", "objects: a non-empty list of objects is required"),
        ("objects:\n  - name: a", r"objects\[0\].vault: no vault"),
        ("vault: kv-1\nobjects:\n  - alias: a", r"objects\[0\].name: is required"),
        ("vault: kv-1\nobjects:\n  - name: a\n    colour: red", r"objects\[0\].colour: unknown"),
        (
            "vault: kv-1\nobjects:\n  - name: a\n    type: blob",
            r"objects\[0\].type: must be one of",
        ),
        ("vault: kv-1\nobjects:\n  - name: a\n    version: latest", r"32-hex-digit"),
        ("vault: kv-1\nobjects:\n  - name: a\n    alias: ../etc/passwd", r"objects\[0\].alias"),
        ("vault: kv-1\nobjects:\n  - name: a\n    mode: rwx", "an octal mode"),
        ("vault: k\nobjects:\n  - name: a", r"objects\[0\].vault: a vault name is 3-24"),
        ("vault: http://kv.example\nobjects:\n  - name: a", "must use https"),
        ("vault: kv-1\nobjects:\n  - name: a\n    format: pfx", "applies to certificates only"),
        ("vault: kv-1\nobjects:\n  - {name: a, type: key, encoding: hex}", "secrets only"),
        (
            "vault: kv-1\nobjects:\n  - {name: a, type: certificate, format: pfx, keyAlias: k}",
            "needs format: pem",
        ),
        ("vault: kv-1\nobjects:\n  - name: [unclosed", "not valid YAML at line 3"),
        ("vault: kv-1\nobjects:\n  - {name: a}\n  - {name: b, alias: a}", "also an output of"),
        (
            "vault: kv-1\nobjects:\n  - {name: a, versionHistory: 2}\n  - {name: b, alias: a/1}",
            "also an output of secret 'a'",
        ),
    ],
)
def test_bad_specs_name_the_object_and_field(spec: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        load_spec(spec)


def test_yaml_errors_do_not_quote_the_document() -> None:
    with pytest.raises(ValidationError) as info:
        load_spec("vault: kv-1\nobjects: [{name: 'sup3r-s3cret\n")
    assert "sup3r" not in str(info.value)


def test_a_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot read the spec"):
        load_spec(tmp_path / "nope.yaml")


def test_repr_shows_only_what_differs_from_defaults() -> None:
    obj = VaultObject(vault="kv-1", name="a", alias="A")
    assert repr(obj) == "VaultObject(vault='kv-1', name='a', type='secret', alias='A')"


@given(st.text(max_size=30))
def test_output_names_never_escape_a_directory(name: str) -> None:
    try:
        check_output_name(name, obj="x")
    except ValidationError:
        return
    parts = name.split("/")
    assert not name.startswith("/")
    assert all(p not in ("", ".", "..") and not p.startswith(".") for p in parts)


def test_what_a_poll_fetches() -> None:
    settings = FetchSettings()
    latest = VaultObject(vault="kv-1", name="latest")
    pinned = VaultObject(vault="kv-1", name="pinned", version="a" * 32)
    never = VaultObject(vault="kv-1", name="never")
    gone = VaultObject(vault="kv-1", name="gone")
    key = VaultObject(vault="kv-1", name="key", type="key")
    states = {
        latest: ObjectState("v1", 100.0),
        pinned: ObjectState("a" * 32, 100.0),
        gone: ObjectState("v1", 100.0),
        key: ObjectState("k1", 100.0),
    }
    secrets = ListProperties("https://kv-1.vault.azure.net", "secrets")
    keys = ListProperties("https://kv-1.vault.azure.net", "keys")
    unchanged = {
        secrets: [Listed("LATEST", "", 100.0, 90.0, True), Listed("pinned", "", 200.0, 1.0, True)],
        keys: [Listed("key", "", 100.0, 1.0, True)],
    }
    objects = [latest, pinned, never, gone, key]
    assert stale_objects(objects, states, unchanged, settings) == [never, gone]
    updated = {**unchanged, secrets: [Listed("latest", "", 101.0, 90.0, True)]}
    assert stale_objects(objects, states, updated, settings) == [latest, never, gone]
    unlisted = {secrets: None, keys: unchanged[keys]}  # the listing failed: GET each
    assert stale_objects(objects, states, unlisted, settings) == [latest, never, gone]
