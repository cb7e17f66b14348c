"""Sinks: the atomic directory, the .env file read by a real shell, a Kubernetes Secret written
with the official client to the Kubernetes emulator, and environment names."""

from __future__ import annotations

import base64
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest
from click.testing import CliRunner

from podidentity.cli import main
from podidentity.errors import ConfigError, KubeConflictError, ValidationError
from podidentity.keyvault import (
    DirectorySink,
    KubernetesSecretSink,
    Output,
    VaultObject,
    env_values,
    write_env_file,
)
from podidentity.models import OwnerReference
from podidentity.testing import KubeEmulator
from tests.keyvault.conftest import VaultWorld

OBJ = VaultObject(vault="kv-sinks", name="anything")


def outputs(values: dict[str, bytes | str], mode: int = 0o600) -> dict[str, Output]:
    return {
        name: Output(
            name=name,
            data=value.encode() if isinstance(value, str) else value,
            mode=mode,
            object=OBJ,
            version="1" * 32,
        )
        for name, value in values.items()
    }


# -- directory ------------------------------------------------------------------------------


def test_directory_layout_is_links_into_one_data_directory(tmp_path: Path) -> None:
    sink = DirectorySink(tmp_path)
    sink.write(outputs({"a": "1", "hist/0": "new", "hist/1": "old"}))
    first = os.readlink(tmp_path / "..data")
    assert os.readlink(tmp_path / "a") == "..data/a"
    assert (tmp_path / "hist" / "1").read_text() == "old"
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o600
    sink.write(outputs({"a": "2", "b": "3"}, mode=0o640))
    second = os.readlink(tmp_path / "..data")
    assert second != first
    assert not (tmp_path / first).exists()  # the old set is gone
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("..")) == ["a", "b"]
    assert (tmp_path / "b").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "a").read_text() == "2"


def test_the_umask_does_not_change_modes(tmp_path: Path) -> None:
    previous = os.umask(0o077)
    try:
        DirectorySink(tmp_path).write(outputs({"shared": "x"}, mode=0o644))
    finally:
        os.umask(previous)
    assert (tmp_path / "shared").stat().st_mode & 0o777 == 0o644


def test_readers_never_see_a_partial_file_or_a_mixed_set(tmp_path: Path) -> None:
    sink = DirectorySink(tmp_path)
    sink.write(outputs({"a": "0" * 100_000, "b": "0"}))
    seen: list[str] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:
        try:
            while not done.is_set():
                try:
                    value = (tmp_path / "a").read_text()
                except FileNotFoundError:
                    continue  # opened through the old set just as it was deleted: open again
                seen.append(value[:1])
                assert value == value[0] * 100_000, "a partial file"
                data = tmp_path / os.readlink(tmp_path / "..data")
                try:
                    pair = (data / "a").read_text()[:1], (data / "b").read_text()
                except FileNotFoundError:
                    continue  # that set was replaced and deleted while we read it
                assert pair[0] == pair[1], f"a mixed set {pair}"
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=reader)
    thread.start()
    for generation in range(1, 60):
        digit = str(generation % 10)
        sink.write(outputs({"a": digit * 100_000, "b": digit}))
    done.set()
    thread.join()
    assert errors == []
    assert len(seen) > 0


def test_a_failed_write_leaves_the_previous_set(tmp_path: Path) -> None:
    sink = DirectorySink(tmp_path)
    sink.write(outputs({"a": "good"}))
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(ConfigError, match="cannot write 'x/y'"):
        sink.write(outputs({"a": "bad", "x": "a file", "x/y": "inside a file"}))
    assert sorted(os.listdir(tmp_path)) == before
    assert (tmp_path / "a").read_text() == "good"


def test_a_file_the_sink_does_not_manage_is_never_replaced(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("someone else's")
    with pytest.raises(ConfigError, match="is not a file podidentity manages"):
        DirectorySink(tmp_path).write(outputs({"a": "x"}))
    assert (tmp_path / "a").read_text() == "someone else's"
    assert sorted(os.listdir(tmp_path)) == ["a"]


# -- environment ----------------------------------------------------------------------------

TRICKY = 'it\'s $HOME and `date` \\n\nsecond line "quoted"'


def test_env_file_round_trips_through_a_shell(tmp_path: Path) -> None:
    target = tmp_path / "app.env"
    write_env_file(target, outputs({"TRICKY": TRICKY, "PLAIN": "x"}))
    assert target.stat().st_mode & 0o777 == 0o600
    shell = 'set -a; . "$1"; printf %s "$TRICKY"'
    done = subprocess.run(
        ["sh", "-c", shell, "sh", str(target)], capture_output=True, text=True, env={}
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == TRICKY


def test_env_names_must_be_variable_names() -> None:
    with pytest.raises(ValidationError, match="set an alias such as 'DB_PASSWORD'"):
        env_values(outputs({"db-password": "x"}))
    with pytest.raises(ValidationError, match="binary"):
        env_values(outputs({"BLOB": b"\xff\xfe"}))
    with pytest.raises(ValidationError, match="NUL"):
        env_values(outputs({"NUL": "a\0b"}))


# -- Kubernetes Secret ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def kube() -> Iterator[KubeEmulator]:
    with KubeEmulator() as emulator:
        yield emulator


@pytest.fixture(scope="module")
def core(kube: KubeEmulator) -> Iterator[kubernetes.client.CoreV1Api]:
    client = kubernetes.config.new_client_from_config(config_file=str(kube.kubeconfig_path))
    with client:
        yield kubernetes.client.CoreV1Api(client)


def test_a_secret_is_created_then_updated(core: kubernetes.client.CoreV1Api) -> None:
    # The owner must exist: the garbage collector deletes a Secret whose owners are all absent.
    pod = core.create_namespaced_pod(
        "default",
        {"metadata": {"name": "app"}, "spec": {"containers": [{"name": "app", "image": "app"}]}},
    )
    owner = OwnerReference(
        api_version="v1", kind="Pod", name="app", uid=pod.metadata.uid, controller=True
    )
    sink = KubernetesSecretSink(core, "default", "app-secrets", owner=owner)
    sink.write(outputs({"password": "one", "tls.crt": b"\x00cert"}))
    created = core.read_namespaced_secret("app-secrets", "default")
    assert base64.b64decode(created.data["password"]) == b"one"
    assert base64.b64decode(created.data["tls.crt"]) == b"\x00cert"
    assert created.metadata.owner_references[0].uid == pod.metadata.uid
    assert created.metadata.labels["app.kubernetes.io/managed-by"] == "podidentity"
    sink.write(outputs({"password": "two"}))
    updated = core.read_namespaced_secret("app-secrets", "default")
    assert updated.data == {"password": base64.b64encode(b"two").decode()}
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)


def test_a_secret_podidentity_does_not_manage_is_never_overwritten(
    core: kubernetes.client.CoreV1Api,
) -> None:
    core.create_namespaced_secret(
        "default",
        {
            "metadata": {"name": "someone-elses"},
            "data": {"password": base64.b64encode(b"theirs").decode()},
        },
    )
    with pytest.raises(KubeConflictError, match="not managed by podidentity"):
        KubernetesSecretSink(core, "default", "someone-elses").write(outputs({"password": "x"}))
    kept = core.read_namespaced_secret("someone-elses", "default")
    assert base64.b64decode(kept.data["password"]) == b"theirs"


def test_secret_keys_must_be_valid(core: kubernetes.client.CoreV1Api) -> None:
    with pytest.raises(ValidationError, match="not a valid Secret key"):
        KubernetesSecretSink(core, "default", "bad-keys").write(outputs({"hist/0": "x"}))


def test_the_cli_writes_a_secret_with_the_kubeconfig(
    world: VaultWorld,
    kube: KubeEmulator,
    core: kubernetes.client.CoreV1Api,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world.set("db-password", "for-the-secret")
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"vault: {world.vault}\nobjects:\n  - name: db-password\n")
    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    result = CliRunner().invoke(
        main, ["secrets", "fetch", "--spec", str(spec), "--kube-secret", "default/from-cli"]
    )
    assert result.exit_code == 0, result.output
    secret = core.read_namespaced_secret("from-cli", "default")
    assert base64.b64decode(secret.data["db-password"]) == b"for-the-secret"


def test_unchanged_files_are_linked_from_the_previous_set(tmp_path: Path) -> None:
    sink = DirectorySink(tmp_path)
    sink.write(outputs({"same": "1", "changes": "a"}))
    before = {n: (tmp_path / n).stat().st_ino for n in ("same", "changes")}
    sink.write(outputs({"same": "1", "changes": "b"}))
    after = {n: (tmp_path / n).stat().st_ino for n in ("same", "changes")}
    assert after["same"] == before["same"]  # the same file, now in the new set
    assert after["changes"] != before["changes"]
    assert (tmp_path / "changes").read_text() == "b"
    sink.write(outputs({"same": "1"}, mode=0o640))  # a new mode is a new file
    assert (tmp_path / "same").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "same").stat().st_ino != before["same"]


def test_a_link_planted_under_an_output_name_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a").symlink_to(target)  # someone hopes we will write through it
    with pytest.raises(ConfigError, match="is not a file podidentity manages"):
        DirectorySink(out).write(outputs({"a": "x"}))
    assert target.read_text() == "precious"
