"""What to read from Key Vault: :class:`VaultObject` and the YAML spec the CLI loads.

The fields follow secrets-store-csi-driver-provider-azure's ``objects`` (objectName,
objectAlias, objectType, objectVersion, objectVersionHistory, objectFormat, objectEncoding,
filePermission) so that a CSI ``SecretProviderClass`` translates line by line, plus akv2k8s'
multi-value secrets (``split``) and a separate key output for certificates (``key_alias``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs
import yaml

from podidentity.errors import ValidationError

__all__ = ["ObjectType", "VaultObject", "check_unique_aliases", "load_spec", "vault_url"]

ObjectType = Literal["secret", "certificate", "key"]
"""What a :class:`VaultObject` names: a secret, a certificate (with its private key) or a key."""

_TYPES = ("secret", "certificate", "key")
_FORMATS = ("pem", "pfx")
_ENCODINGS = ("utf-8", "base64", "hex")
_SPLITS = ("json", "yaml")
# Key Vault object names: 1-127 letters, digits and dashes.
_OBJECT_NAME = re.compile(r"[0-9A-Za-z-]{1,127}\Z")
# Vault names: 3-24 letters, digits and single dashes, starting with a letter.
_VAULT_NAME = re.compile(r"[A-Za-z](?:-?[A-Za-z0-9]){2,23}\Z")
_VERSION = re.compile(r"[0-9a-fA-F]{32}\Z")
# An output name is a relative path of plain components (a file, an env name, a Secret key).
_OUTPUT_COMPONENT = re.compile(r"[A-Za-z0-9_][-A-Za-z0-9_.]*\Z")
_SPEC_KEYS = {
    "vault": "vault",
    "name": "name",
    "type": "type",
    "version": "version",
    "versionHistory": "version_history",
    "version_history": "version_history",
    "alias": "alias",
    "format": "format",
    "keyAlias": "key_alias",
    "key_alias": "key_alias",
    "encoding": "encoding",
    "mode": "mode",
    "split": "split",
}


def _label(vault: str, type_: str, name: str) -> str:
    return f"{type_} {name!r} in vault {vault!r}"


def check_output_name(name: str, *, obj: str, path: str = "alias") -> None:
    """Refuse output names that could escape a directory or are not portable.

    Raises:
        ValidationError: an absolute path, ``..``, an empty or hidden component.
    """
    parts = name.split("/")
    if not name or any(not _OUTPUT_COMPONENT.match(p) or len(p) > 255 for p in parts):
        raise ValidationError(
            path,
            "must be a relative name of letters, digits, '-', '_' and '.', not starting with '.' "
            "or '-', at most 255 per component (components separated by '/')",
            name,
            obj=obj,
        )


@attrs.frozen(kw_only=True)
class VaultObject:
    """One object to read from Key Vault, and how to deliver it.

    Attributes:
        vault: the vault's name (``orders-kv``) or URL (``https://orders-kv.vault.azure.net``);
            a name becomes ``https://<name>.<vault suffix>`` (see ``FetchSettings``).
        name: the object's name in the vault.
        type: ``secret``, ``certificate`` (the private key and chain, from the certificate's
            backing secret) or ``key`` (the public key, as PEM).
        version: a 32-hex-digit version, or ``None`` for the latest. A pinned version is
            never fetched again by a watcher.
        version_history: how many versions to deliver, newest first, starting at ``version``
            (or the latest); above 1 the outputs are ``<alias>/0`` (newest) ... ``<alias>/<n-1>``.
        alias: the output's name: the file name, environment variable or Secret key
            (default: ``name``).
        format: for certificates, ``pem`` (key then chain: server, intermediates, root) or
            ``pfx`` (PKCS#12 without a password).
        key_alias: for PEM certificates, deliver the private key under this name and only the
            chain under ``alias`` (like ``tls.key`` / ``tls.crt``).
        encoding: for secrets, how the stored value is encoded: ``utf-8`` (as is), ``base64`` or
            ``hex`` (decoded to bytes before delivery), as the CSI driver's ``objectEncoding``.
        mode: the file mode of the written file (owner read/write by default).
        split: ``json`` or ``yaml``: the secret is a mapping whose entries become separate
            outputs, named by their keys (akv2k8s' multi-value secrets).

    Raises:
        ValidationError: a field is invalid; the message names the object and the field.
    """

    vault: str
    name: str
    type: ObjectType = "secret"
    version: str | None = None
    version_history: int = 1
    alias: str | None = None
    format: Literal["pem", "pfx"] = "pem"
    key_alias: str | None = None
    encoding: Literal["utf-8", "base64", "hex"] = "utf-8"
    mode: int = 0o600
    split: Literal["json", "yaml"] | None = None

    def __attrs_post_init__(self) -> None:
        obj = self.label
        if not isinstance(self.vault, str) or not self.vault:
            raise ValidationError("vault", "a vault name or URL is required", obj=obj)
        vault_url(self.vault, "vault.azure.net", obj=obj)
        if not isinstance(self.name, str) or not _OBJECT_NAME.match(self.name):
            raise ValidationError(
                "name", "must be 1-127 letters, digits and dashes", self.name, obj=obj
            )
        _choice(self.type, _TYPES, "type", obj)
        if self.version is not None and not (
            isinstance(self.version, str) and _VERSION.match(self.version)
        ):
            raise ValidationError(
                "version",
                "must be a 32-hex-digit version id, or omitted for the latest",
                self.version,
                obj=obj,
            )
        if (
            isinstance(self.version_history, bool)
            or not isinstance(self.version_history, int)
            or not 1 <= self.version_history <= 100
        ):
            raise ValidationError(
                "version_history",
                "must be an integer from 1 to 100",
                self.version_history,
                obj=obj,
            )
        check_output_name(self.output_name, obj=obj)
        _choice(self.format, _FORMATS, "format", obj)
        _choice(self.encoding, _ENCODINGS, "encoding", obj)
        if self.split is not None:
            _choice(self.split, _SPLITS, "split", obj)
        if (
            isinstance(self.mode, bool)
            or not isinstance(self.mode, int)
            or not 0 <= self.mode <= 0o777
        ):
            raise ValidationError("mode", "must be a file mode from 0 to 0o777", self.mode, obj=obj)
        self._check_combinations(obj)

    def _check_combinations(self, obj: str) -> None:
        if self.type != "certificate":
            if self.format != "pem":
                raise ValidationError("format", "applies to certificates only", obj=obj)
            if self.key_alias is not None:
                raise ValidationError("key_alias", "applies to certificates only", obj=obj)
        if self.type != "secret":
            if self.encoding != "utf-8":
                raise ValidationError("encoding", "applies to secrets only", obj=obj)
            if self.split is not None:
                raise ValidationError("split", "applies to secrets only", obj=obj)
        if self.key_alias is not None:
            if self.format != "pem":
                raise ValidationError("key_alias", "needs format: pem", obj=obj)
            check_output_name(self.key_alias, obj=obj, path="key_alias")
            if self.key_alias == self.output_name:
                raise ValidationError("key_alias", "must differ from alias", obj=obj)
        if self.split is not None and self.encoding != "utf-8":
            raise ValidationError("split", "needs encoding: utf-8 (a JSON/YAML text)", obj=obj)
        if self.version_history > 1 and (self.split is not None or self.key_alias is not None):
            raise ValidationError(
                "version_history", "cannot be combined with split or key_alias", obj=obj
            )

    def __repr__(self) -> str:
        fields = [f"vault={self.vault!r}", f"name={self.name!r}", f"type={self.type!r}"]
        fields += [
            f"{a.name}={getattr(self, a.name)!r}"
            for a in attrs.fields(VaultObject)[3:]
            if getattr(self, a.name) != a.default
        ]
        return f"VaultObject({', '.join(fields)})"

    @property
    def label(self) -> str:
        """How messages name this object: ``secret 'db-password' in vault 'orders-kv'``."""
        return _label(str(self.vault), str(self.type), str(self.name))

    @property
    def output_name(self) -> str:
        """The alias, or the object's name when no alias is set."""
        return self.alias if self.alias is not None else self.name

    @property
    def tracks_latest(self) -> bool:
        """Whether new versions in the vault change this object's output."""
        return self.version is None

    def output_names(self) -> tuple[str, ...]:
        """The outputs this object produces, when they are known before fetching.

        Split secrets produce names from their content; they report none here.
        """
        if self.split is not None:
            return ()
        if self.version_history > 1:
            return tuple(f"{self.output_name}/{i}" for i in range(self.version_history))
        if self.key_alias is not None:
            return (self.output_name, self.key_alias)
        return (self.output_name,)


def _choice(value: Any, allowed: Sequence[str], path: str, obj: str) -> None:
    if value not in allowed:
        raise ValidationError(path, f"must be one of {', '.join(allowed)}", value, obj=obj)


def vault_url(vault: str, suffix: str, *, obj: str = "") -> str:
    """The vault's URL without a trailing slash, from a name or a URL.

    Raises:
        ValidationError: neither a valid vault name nor an ``https://`` URL.
    """
    if "://" in vault:
        if not vault.lower().startswith("https://"):
            raise ValidationError("vault", "a vault URL must use https", vault, obj=obj)
        host = vault[len("https://") :].split("/", 1)[0]
        if not host or "@" in host:
            raise ValidationError("vault", "a vault URL needs a host name", vault, obj=obj)
        return f"https://{host.lower()}"
    if not _VAULT_NAME.match(vault):
        raise ValidationError(
            "vault",
            "a vault name is 3-24 letters, digits and single dashes, starting with a letter "
            "(or give the vault's https URL)",
            vault,
            obj=obj,
        )
    return f"https://{vault.lower()}.{suffix.strip('.')}"


def check_unique_aliases(objects: Iterable[VaultObject]) -> None:
    """Refuse two objects that would write the same output (or one output inside another).

    Raises:
        ValidationError: naming both objects and the shared alias.
    """
    seen: dict[str, VaultObject] = {}  # every output name
    inside: dict[str, VaultObject] = {}  # every directory an output name lies in
    for obj in objects:
        for name in obj.output_names():
            parts = name.split("/")
            parents = ["/".join(parts[:i]) for i in range(1, len(parts))]
            owner = seen.get(name) or inside.get(name)
            owner = owner or next((seen[p] for p in parents if p in seen), None)
            if owner is not None:
                raise ValidationError(
                    "alias",
                    f"{name!r} is also an output of {owner.label}; give one of them another alias",
                    obj=obj.label,
                )
        for name in obj.output_names():
            seen[name] = obj
            parts = name.split("/")
            for i in range(1, len(parts)):
                inside.setdefault("/".join(parts[:i]), obj)


def load_spec(source: str | Path | Mapping[str, Any]) -> tuple[VaultObject, ...]:
    """Load the objects of a spec: a YAML file path, YAML text, or a parsed mapping.

    The spec is ``{vault: <default vault>, objects: [{name: ..., type: ..., alias: ...}, ...]}``;
    each object may name its own ``vault``. CSI-style camelCase keys (``versionHistory``,
    ``keyAlias``) are accepted too. Modes may be given as octal strings (``"0640"``).

    Raises:
        ValidationError: an unreadable or malformed spec, naming the object and field; two
            objects with the same alias.
    """
    where = "spec"
    if isinstance(source, Path) or (
        isinstance(source, str) and "\n" not in source and source.endswith((".yaml", ".yml"))
    ):
        path = Path(source)
        where = f"spec {str(path)!r}"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise ValidationError("", f"cannot read the spec: {err.strerror}", obj=where) from err
        document: Any = _parse_yaml(text, where)
    elif isinstance(source, str):
        document = _parse_yaml(source, where)
    else:
        document = source
    if not isinstance(document, Mapping):
        raise ValidationError("", "a spec is a mapping with 'objects'", obj=where)
    unknown = set(document) - {"vault", "objects"}
    if unknown:
        raise ValidationError(
            "", f"unknown keys {sorted(unknown)}; use vault and objects", obj=where
        )
    entries = document.get("objects")
    if not isinstance(entries, list) or not entries:
        raise ValidationError("objects", "a non-empty list of objects is required", obj=where)
    default_vault = document.get("vault")
    objects = tuple(
        _object(entry, default_vault, f"objects[{index}]", where)
        for index, entry in enumerate(entries)
    )
    check_unique_aliases(objects)
    return objects


def _parse_yaml(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ValidationError("", f"not valid YAML{at}", obj=where) from None


def _object(entry: Any, default_vault: Any, path: str, where: str) -> VaultObject:
    if not isinstance(entry, Mapping):
        raise ValidationError(path, "each object is a mapping with at least 'name'", obj=where)
    unknown = sorted(set(entry) - set(_SPEC_KEYS))
    if unknown:
        raise ValidationError(
            f"{path}.{unknown[0]}",
            f"unknown field; known: {', '.join(sorted(set(_SPEC_KEYS.values())))}",
            obj=where,
        )
    fields = {_SPEC_KEYS[k]: v for k, v in entry.items()}
    fields.setdefault("vault", default_vault)
    if fields["vault"] is None:
        raise ValidationError(f"{path}.vault", "no vault: set it here or at the top", obj=where)
    if "name" not in fields:
        raise ValidationError(f"{path}.name", "is required", obj=where)
    if isinstance(fields.get("mode"), str):
        try:
            fields["mode"] = int(fields["mode"], 8)
        except ValueError:
            raise ValidationError(
                f"{path}.mode", "an octal mode such as '0600'", fields["mode"], obj=where
            ) from None
    for key in ("version", "alias", "key_alias"):
        if fields.get(key) is not None and not isinstance(fields[key], str):
            fields[key] = str(fields[key])
    try:
        return VaultObject(**fields)
    except ValidationError as err:
        raise ValidationError(
            f"{path}.{err.path}" if err.path else path,
            err.rule,
            err.value,
            obj=f"{where}: {err.obj}",
        ) from None
