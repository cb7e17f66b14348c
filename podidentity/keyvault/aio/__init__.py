"""The asyncio twin of :mod:`podidentity.keyvault`: the same names, the I/O awaitable.

``get_secret``, ``fetch``, ``make_credential`` and ``Watcher`` here use azure-identity's and the
Key Vault SDK's ``aio`` clients. Spec, settings, results, credential choice and sinks are the
sync module's own objects, re-exported (a watcher calls sinks in a worker thread, since file and
Kubernetes writes block).
"""

from __future__ import annotations

from podidentity.keyvault._core import FetchResult, FetchSettings, ObjectFailure, Output
from podidentity.keyvault._credential import choose_credential
from podidentity.keyvault._directory import DirectorySink
from podidentity.keyvault._env import EnvFileSink, env_values, exec_with_env, write_env_file
from podidentity.keyvault._kube_secret import KubernetesSecretSink, SecretsApi
from podidentity.keyvault._rotation import PollResult
from podidentity.keyvault._spec import ObjectType, VaultObject, load_spec
from podidentity.keyvault._watch import Sink
from podidentity.keyvault.aio._reader import fetch, get_secret, make_credential
from podidentity.keyvault.aio._watch import Watcher

__all__ = [
    "DirectorySink",
    "EnvFileSink",
    "FetchResult",
    "FetchSettings",
    "KubernetesSecretSink",
    "ObjectFailure",
    "ObjectType",
    "Output",
    "PollResult",
    "SecretsApi",
    "Sink",
    "VaultObject",
    "Watcher",
    "choose_credential",
    "env_values",
    "exec_with_env",
    "fetch",
    "get_secret",
    "load_spec",
    "make_credential",
    "write_env_file",
]
