"""Client configuration files for the emulator: a kubeconfig and in-cluster style files."""

from __future__ import annotations

from pathlib import Path

import attrs
import yaml

__all__ = ["InClusterConfig", "write_in_cluster", "write_kubeconfig"]


@attrs.frozen
class InClusterConfig:
    """What a pod sees: a token file, the CA, and the service host/port environment.

    Use ``env`` with ``monkeypatch.setenv`` (or ``os.environ.update``), or pass the paths to
    ``kubernetes.config.load_incluster_config`` /
    ``kubernetes.config.incluster_config.InClusterConfigLoader(token_filename=...,
    cert_filename=...)``. Only meaningful in HTTPS mode: in-cluster clients always use https.
    """

    host: str
    port: int
    token_path: Path
    ca_path: Path
    namespace_path: Path

    @property
    def env(self) -> dict[str, str]:
        """``KUBERNETES_SERVICE_HOST`` and ``KUBERNETES_SERVICE_PORT``."""
        return {"KUBERNETES_SERVICE_HOST": self.host, "KUBERNETES_SERVICE_PORT": str(self.port)}


def write_kubeconfig(
    path: Path, *, server: str, token: str, ca_path: Path | None, namespace: str = "default"
) -> Path:
    """Write a kubeconfig with one cluster, one token user and one current context."""
    cluster: dict[str, str] = {"server": server}
    if ca_path is not None:
        cluster["certificate-authority"] = str(ca_path)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "podidentity-emulator", "cluster": cluster}],
        "users": [{"name": "podidentity-admin", "user": {"token": token}}],
        "contexts": [
            {
                "name": "podidentity-emulator",
                "context": {
                    "cluster": "podidentity-emulator",
                    "user": "podidentity-admin",
                    "namespace": namespace,
                },
            }
        ],
        "current-context": "podidentity-emulator",
        "preferences": {},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


def write_in_cluster(
    directory: Path, *, host: str, port: int, token: str, ca_pem: bytes, namespace: str
) -> InClusterConfig:
    """Write ``token``, ``ca.crt`` and ``namespace`` as mounted into a pod."""
    directory.mkdir(parents=True, exist_ok=True)
    token_path = directory / "token"
    token_path.write_text(token)
    token_path.chmod(0o600)
    ca_path = directory / "ca.crt"
    ca_path.write_bytes(ca_pem)
    namespace_path = directory / "namespace"
    namespace_path.write_text(namespace)
    return InClusterConfig(host, port, token_path, ca_path, namespace_path)
