"""Read Key Vault with the pod's identity: into the application, files, env or a Secret.

The one-liner for application code::

    from podidentity.keyvault import get_secret

    password = get_secret("orders-kv", "db-password")

and, for init containers, sidecars and wrappers, :func:`fetch` of many
:class:`VaultObject` (loaded from YAML with :func:`load_spec`) with every object fetched
concurrently (bounded), one client per vault, retries on 429/5xx that honour ``Retry-After``,
and a failure per object that names it. Sinks deliver the outputs: :class:`DirectorySink`
(atomic files, the set swapped at once), :func:`write_env_file`, :func:`exec_with_env` and
:class:`KubernetesSecretSink`; :class:`Watcher` polls for new versions at the cost of one
request per list page the vault returns (25 secrets at most a page), plus one GET per changed
object.

``podidentity.keyvault.aio`` has the same API for asyncio. Both share one sans-I/O core:
request flows, conversions, error mapping and rotation decisions; the two only do I/O.
Values never appear in logs, exceptions or reprs.
"""

from __future__ import annotations

import logging

from podidentity.keyvault._core import FetchResult, FetchSettings, ObjectFailure, Output
from podidentity.keyvault._credential import choose_credential
from podidentity.keyvault._directory import DirectorySink
from podidentity.keyvault._env import EnvFileSink, env_values, exec_with_env, write_env_file
from podidentity.keyvault._kube_secret import KubernetesSecretSink, SecretsApi
from podidentity.keyvault._rotation import PollResult
from podidentity.keyvault._spec import ObjectType, VaultObject, load_spec
from podidentity.keyvault._sync import fetch, get_secret, make_credential
from podidentity.keyvault._watch import Sink, Watcher

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

logging.getLogger(__name__).addHandler(logging.NullHandler())
