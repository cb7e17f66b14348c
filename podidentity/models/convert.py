"""Rewrite legacy aad-pod-identity manifests in the current v1 form, as plain data.

:func:`convert_documents` takes the documents of one or more manifests (the dicts YAML gives)
and returns converted copies and the list of :class:`Change` it made. What it changes:

- legacy capitalised field names (``ClientID``, ``ResourceID``, ``AzureIdentity``,
  ``Selector``, ``Type``, ...) become the v1 camelCase names. The list comes from the models'
  own field tables, so it cannot drift from what the models read;
- ``spec.type`` written as text (``"0"``, or upstream's Go constant names ``UserAssignedMSI``,
  ``ServicePrincipal``, ``ServicePrincipalCertificate``) becomes the integer the CRD declares;
- object names that are not DNS-1123 (``my_identity``, ``My-Identity``) become the nearest
  valid one (``my-identity``), and so do the names that refer to them (a binding's
  ``azureIdentity``). The mapping is a pure function of the old name
  (:func:`~podidentity.models._names.suggest_dns1123`), so references stay consistent across
  documents and across files converted in separate runs;
- a binding ``selector`` that is not a valid label value becomes the nearest valid one, and so
  does every ``aadpodidbinding`` label with that value on any object (pods, and the pod
  templates and ``matchLabels`` of workloads). Valid selectors are never touched: label values
  may contain capitals and ``_``, and the pods already carrying them must keep matching;
- only with ``label_selectors=True``: a binding's ``selector: X`` becomes the equivalent
  ``labelSelector: {matchLabels: {aadpodidbinding: X}}``. podidentity matches both the same way,
  but upstream's MIC ignores ``labelSelector`` and treats a binding without ``selector`` as
  matching pods that have no label, so this output is for podidentity only.

Everything else is kept as it was: key order, unknown fields, objects of other kinds. Converting
converted output changes nothing. Pure: no I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any, Literal

import attrs

from podidentity.errors import ValidationError
from podidentity.models._load import KINDS, parse
from podidentity.models._names import (
    is_dns1123_subdomain,
    is_label_value,
    suggest_dns1123,
    suggest_label_value,
)
from podidentity.models._objects import ManifestObject, label_maps, manifest_objects
from podidentity.models._resource import GROUP, object_label
from podidentity.models._wire import Embedded, Field, Nested, join
from podidentity.models.binding import BINDING_LABEL
from podidentity.models.identity import IdentityType

__all__ = ["Change", "convert_documents", "is_pod_identity_object"]

_TYPE_NAMES = {
    "userassignedmsi": IdentityType.USER_ASSIGNED_MSI,
    "serviceprincipal": IdentityType.SERVICE_PRINCIPAL,
    "serviceprincipalcertificate": IdentityType.SERVICE_PRINCIPAL_CERTIFICATE,
}
"""Upstream's Go constant names for ``spec.type``, which some tutorials wrote as values."""


@attrs.frozen(kw_only=True)
class Change:
    """One change :func:`convert_documents` made.

    Attributes:
        index: the position of the document in the list given (from 0).
        obj: the object as it was named before the change (``AzureIdentity ns/my_identity``).
        path: the field path: as the input spelled it for a renamed field (``spec.ClientID``),
            with v1 names for a replaced value (``spec.azureIdentity``).
        kind: ``"field"`` when a key was renamed or moved (``old`` and ``new`` are field
            names), ``"value"`` when a value was replaced.
        old: the old field name or value.
        new: the new field name or value.
    """

    index: int
    obj: str
    path: str
    kind: Literal["field", "value"]
    old: Any
    new: Any

    def __str__(self) -> str:
        what = "field" if self.kind == "field" else "value"
        return f"{self.obj}: {self.path}: {what} {self.old!r} -> {self.new!r}"


def is_pod_identity_object(data: object) -> bool:
    """True for an object of the ``aadpodidentity.k8s.io`` group or one of its kinds.

    This is the rule ``load_yaml`` uses to decide what must parse as a model.
    """
    if not isinstance(data, Mapping):
        return False
    api_version = data.get("apiVersion")
    ours = isinstance(api_version, str) and api_version.startswith(f"{GROUP}/")
    return ours or data.get("kind") in KINDS


def convert_documents(
    documents: Sequence[Any], *, label_selectors: bool = False
) -> tuple[list[Any], list[Change]]:
    """Convert manifests' documents to the v1 form; see the module docstring for the rules.

    Documents are converted together, so references between them (a binding naming an
    identity) stay consistent. The input is not modified.

    Args:
        documents: the documents as YAML gives them (dicts; other values are kept as they are).
        label_selectors: also turn each binding's ``selector`` into the equivalent
            ``labelSelector`` (podidentity only; upstream ignores ``labelSelector``).

    Returns:
        The converted documents, in order, and every change made, in document order.

    Raises:
        ValidationError: an object of our kinds does not parse even after its fields were
            converted (wrong types, both ``clientID`` and ``ClientID`` with different values),
            or two objects would end up with the same name; ``obj`` says which (``item N``
            counts from 0).
    """
    out, changes = convert_unchecked(documents, label_selectors=label_selectors)
    for unit in manifest_objects(out):
        if is_pod_identity_object(unit.data):
            try:
                parse(unit.data)
            except ValidationError as err:
                where = f"item {unit.index}{' ' + unit.prefix if unit.prefix else ''}"
                raise err.within(f"{where}: {err.obj}") from err
    _check_collisions(manifest_objects(documents), manifest_objects(out))
    return out, changes


def convert_unchecked(
    documents: Sequence[Any], *, label_selectors: bool = False
) -> tuple[list[Any], list[Change]]:
    """The conversion without the final checks (``validate_documents`` reports those).

    Not exported: the building block ``validate_documents`` shares.
    """
    out = [copy.deepcopy(data) for data in documents]
    changes: list[Change] = []
    for unit in manifest_objects(out):  # the units share the copies' objects: changes land in out
        data = unit.data
        if not isinstance(data, MutableMapping):
            continue
        kind = data.get("kind")
        label = object_label(str(kind or "object"), data)  # as named before any change
        found: list[_Found] = []
        if not is_pod_identity_object(data):
            found = _pod_labels(data)
        elif isinstance(kind, str) and kind in KINDS:
            found = _object(data, kind, "")
            if label_selectors and kind == "AzureIdentityBinding":
                found += _label_selector(data)
        changes += [_change(unit, label, *item) for item in found]
    return out, changes


_Found = tuple[str, Literal["field", "value"], Any, Any]


def _change(
    unit: ManifestObject, obj: str, path: str, kind: Literal["field", "value"], old: Any, new: Any
) -> Change:
    path = join(unit.prefix, path) if unit.prefix else path
    return Change(index=unit.index, obj=obj, path=path, kind=kind, old=old, new=new)


def _object(data: MutableMapping[str, Any], kind: str, path: str) -> list[_Found]:
    """Convert one object of our kinds in place (also used for embedded references)."""
    cls = KINDS[kind]
    found: list[_Found] = []
    spec = data.get("spec")
    if isinstance(spec, MutableMapping):
        found += _fields(spec, cls._spec_fields, join(path, "spec"))
        if kind == "AzureIdentity":
            found += _type(spec, join(path, "spec"))
        if kind == "AzureIdentityBinding":
            found += _binding_references(spec, join(path, "spec"))
        for field in cls._spec_fields:
            item = spec.get(field.wire)
            if isinstance(field.codec, Embedded) and isinstance(item, MutableMapping):
                found += _object(item, field.codec.cls.kind, join(join(path, "spec"), field.wire))
    metadata = data.get("metadata")
    if isinstance(metadata, MutableMapping):
        name = metadata.get("name")
        if isinstance(name, str) and name and not is_dns1123_subdomain(name):
            new = suggest_dns1123(name)
            if new:
                metadata["name"] = new
                found.append((join(path, "metadata.name"), "value", name, new))
    return found


def _fields(mapping: MutableMapping[str, Any], fields: Sequence[Field], path: str) -> list[_Found]:
    """Rename legacy keys to their v1 names, keeping the key order; recurse into structs."""
    found: list[_Found] = []
    for field in fields:
        for legacy in field.legacy:
            if legacy not in mapping:
                continue
            if field.wire in mapping and mapping[field.wire] != mapping[legacy]:
                if mapping[legacy] is None:
                    del mapping[legacy]  # null means absent: nothing to keep
                    found.append((join(path, legacy), "field", legacy, field.wire))
                elif mapping[field.wire] is None:
                    del mapping[field.wire]
                    _rename_key(mapping, legacy, field.wire)
                    found.append((join(path, legacy), "field", legacy, field.wire))
                # Different values: leave both, parsing reports the clash.
                continue
            if field.wire in mapping:
                del mapping[legacy]
            else:
                _rename_key(mapping, legacy, field.wire)
            found.append((join(path, legacy), "field", legacy, field.wire))
        item = mapping.get(field.wire)
        if isinstance(field.codec, Nested) and isinstance(item, MutableMapping):
            found += _fields(item, field.codec.cls._fields, join(path, field.wire))
    return found


def _rename_key(mapping: MutableMapping[str, Any], old: str, new: str) -> None:
    """Rename a key where it stands: the output keeps the author's order."""
    items = list(mapping.items())
    mapping.clear()
    for key, value in items:
        mapping[new if key == old else key] = value


def _type(spec: MutableMapping[str, Any], path: str) -> list[_Found]:
    value = spec.get("type")
    if not isinstance(value, str):
        return []
    text = value.strip()
    number: IdentityType | None = None
    if text.isdigit() and int(text) in set(IdentityType):
        number = IdentityType(int(text))
    else:
        number = _TYPE_NAMES.get(text.lower())
    if number is None:
        return []  # not convertible: parsing reports it
    spec["type"] = int(number)
    return [(join(path, "type"), "value", value, int(number))]


def _binding_references(spec: MutableMapping[str, Any], path: str) -> list[_Found]:
    found: list[_Found] = []
    name = spec.get("azureIdentity")
    if isinstance(name, str) and name and not is_dns1123_subdomain(name):
        new = suggest_dns1123(name)
        if new:
            spec["azureIdentity"] = new
            found.append((join(path, "azureIdentity"), "value", name, new))
    selector = spec.get("selector")
    if isinstance(selector, str) and selector and not is_label_value(selector):
        new = suggest_label_value(selector)
        if new:
            spec["selector"] = new
            found.append((join(path, "selector"), "value", selector, new))
    return found


def _label_selector(data: MutableMapping[str, Any]) -> list[_Found]:
    spec = data.get("spec")
    if not isinstance(spec, MutableMapping):
        return []
    selector = spec.get("selector")
    if not isinstance(selector, str) or not selector or spec.get("labelSelector") is not None:
        return []
    items = list(spec.items())
    spec.clear()
    for key, value in items:
        if key == "selector":
            spec["labelSelector"] = {"matchLabels": {BINDING_LABEL: selector}}
        else:
            spec[key] = value
    return [("spec.selector", "field", "selector", f"labelSelector.matchLabels.{BINDING_LABEL}")]


def _pod_labels(data: MutableMapping[str, Any]) -> list[_Found]:
    """Give invalid ``aadpodidbinding`` labels the value their binding's selector gets."""
    found: list[_Found] = []
    for path, labels in label_maps(data):
        value = labels.get(BINDING_LABEL)
        if isinstance(value, str) and value and not is_label_value(value):
            new = suggest_label_value(value)
            if new:
                labels[BINDING_LABEL] = new
                found.append((join(path, BINDING_LABEL), "value", value, new))
    return found


def _check_collisions(before: Sequence[ManifestObject], after: Sequence[ManifestObject]) -> None:
    """Refuse renames that make two different objects one (``a_b`` and ``a-b``)."""
    seen: dict[tuple[str, str, str], tuple[int, str]] = {}
    for index, (old_unit, new_unit) in enumerate(zip(before, after, strict=True)):
        old, new = old_unit.data, new_unit.data
        if not is_pod_identity_object(new):
            continue
        key = _key(new)
        if key is None:
            continue
        old_key = _key(old)
        old_name = old_key[2] if old_key else key[2]
        if key in seen and seen[key][1] != old_name:
            other = seen[key][1]
            raise ValidationError(
                "metadata.name",
                f"would be renamed to {key[2]!r}, the new name of {key[0]} {other!r} too; "
                "rename one of them by hand",
                old_name,
                obj=object_label(key[0], old),
            )
        seen.setdefault(key, (index, old_name))


def _key(data: object) -> tuple[str, str, str] | None:
    if not isinstance(data, Mapping):
        return None
    meta = data.get("metadata")
    if not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str):
        return None
    namespace = meta.get("namespace")
    return (str(data.get("kind")), namespace if isinstance(namespace, str) else "", meta["name"])
