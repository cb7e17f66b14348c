"""Manifests shared by the emulator tests."""

from __future__ import annotations


def pod(name: str, **labels: str) -> dict[str, object]:
    """A minimal valid pod manifest."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
    }
