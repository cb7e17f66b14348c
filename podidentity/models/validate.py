"""Check manifests as a whole: every object's problems, legacy spellings, cross references.

:func:`validate_documents` is what ``podidentity validate`` prints. It adds nothing to what one
object is checked for (that is each model's ``problems()``); it adds what only the manifest
shows:

- structural errors, per object, instead of stopping at the first (as ``load_yaml`` does);
- how the manifest was *written*: legacy capitalised fields and a ``spec.type`` given as text
  parse fine (the models read them) but are not the v1 form, and upstream's CRD since v1.6
  prunes the capitalised ones, so they are errors that ``podidentity convert`` fixes;
- references between objects: a binding naming an identity that none of the documents
  defines (a warning: it may exist in the cluster), or one in another namespace; the same
  object defined twice; a pod or workload labelled ``aadpodidbinding`` with a value that no
  binding selects (only when the documents contain bindings at all).

Findings that :func:`~podidentity.models.convert.convert_documents` would fix are marked
``convertible``. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from podidentity.errors import ValidationError
from podidentity.models._load import Model, parse
from podidentity.models._objects import ManifestObject, label_maps, manifest_objects
from podidentity.models._resource import object_label
from podidentity.models.binding import BINDING_LABEL, AzureIdentityBinding
from podidentity.models.convert import Change, convert_unchecked, is_pod_identity_object
from podidentity.models.identity import AzureIdentity
from podidentity.models.problems import Problem, Severity

__all__ = ["Finding", "validate_documents"]


@attrs.frozen(kw_only=True)
class Finding:
    """One problem found in one document.

    Attributes:
        index: the position of the document in the list given (from 0).
        obj: the object, as ``Kind namespace/name`` (or ``Kind``, or ``object``).
        problem: the field path (as written in the document), message, severity, suggestion.
        convertible: ``podidentity convert`` (``convert_documents``) fixes it.
    """

    index: int
    obj: str
    problem: Problem
    convertible: bool = False

    def __str__(self) -> str:
        fix = "; fix: run podidentity convert" if self.convertible else ""
        return f"{self.obj}: {self.problem}{fix}"


def validate_documents(documents: Sequence[Any]) -> list[Finding]:
    """Check the documents of one or more manifests together.

    Documents of other kinds (Deployments, Secrets, ...) are not checked themselves; they are
    only looked at for ``aadpodidbinding`` labels. Never raises.

    Args:
        documents: the documents as YAML gives them (see ``load_documents``).

    Returns:
        Every finding, in document order; errors and warnings are told apart by
        ``finding.problem.severity``. Empty means every object is fine.
    """
    converted, changes = convert_unchecked(documents)
    units = manifest_objects(documents)
    models: dict[int, tuple[ManifestObject, Model]] = {}
    findings: list[Finding] = []
    for number, (unit, after) in enumerate(zip(units, manifest_objects(converted), strict=True)):
        data = unit.data
        if not isinstance(data, Mapping):
            problem = Problem(path=unit.prefix, message="a manifest document must be an object")
            findings.append(Finding(index=unit.index, obj="object", problem=problem))
            continue
        if not is_pod_identity_object(data):
            continue
        label = object_label(str(data.get("kind") or "object"), data)
        mine = [c for c in changes if c.index == unit.index and _within(c.path, unit.prefix)]
        model = _parse(data, after.data)
        if isinstance(model, ValidationError):
            findings.append(_finding(unit, label, _structural(model)))
            continue
        models[number] = (unit, model)
        findings += [
            Finding(index=unit.index, obj=label, problem=_legacy(c), convertible=True)
            for c in mine
            if c.kind == "field" or c.path.endswith("spec.type")
        ]
        fixed = {c.path for c in mine if c.kind == "value"}
        for problem in model.problems():
            finding = _finding(unit, label, problem)
            convertible = finding.problem.path in fixed
            findings.append(attrs.evolve(finding, convertible=convertible))
    findings += _references(units, models)
    findings.sort(key=lambda f: f.index)
    return findings


def _within(path: str, prefix: str) -> bool:
    return not prefix or path.startswith(f"{prefix}.")


def _finding(unit: ManifestObject, obj: str, problem: Problem) -> Finding:
    """A finding about one object, its path rooted at the document (``items[2].spec...``)."""
    if unit.prefix:
        path = f"{unit.prefix}.{problem.path}" if problem.path else unit.prefix
        problem = attrs.evolve(problem, path=path)
    return Finding(index=unit.index, obj=obj, problem=problem)


def _parse(raw: Mapping[str, Any], converted: Any) -> Model | ValidationError:
    """The model as written; if only its spellings keep it from parsing, as converted."""
    try:
        return parse(raw)
    except ValidationError as err:
        try:
            return parse(converted)
        except ValidationError:
            return err


def _structural(err: ValidationError) -> Problem:
    return Problem(path=err.path, message=f"{err.rule}{_got(err)}; the object cannot be read")


def _got(err: ValidationError) -> str:
    return "" if err.value is None else f", got {err.value!r}"


def _legacy(change: Change) -> Problem:
    if change.kind == "value":
        return Problem(
            path=change.path,
            message=f"{change.old!r} is text; the field is an integer",
            suggestion=str(change.new),
        )
    return Problem(
        path=change.path,
        message=f"legacy spelling {change.old!r}: the v1 name is {change.new!r}; aad-pod-identity "
        "since v1.6 prunes the capitalised field, so the value is lost there",
        suggestion=str(change.new),
    )


def _references(
    units: Sequence[ManifestObject], models: Mapping[int, tuple[ManifestObject, Model]]
) -> list[Finding]:
    found: list[Finding] = []
    # Names from the raw documents: an identity that does not parse still exists by name.
    identities = [
        (_name(u.data, "namespace"), _name(u.data, "name"))
        for u in units
        if isinstance(u.data, Mapping) and u.data.get("kind") == AzureIdentity.kind
    ]
    bindings = [(u, m) for u, m in models.values() if isinstance(m, AzureIdentityBinding)]
    seen: set[tuple[str, str, str]] = set()
    for unit, model in models.values():
        key = (model.kind, model.namespace, model.name)
        if key in seen:
            problem = Problem(
                path="metadata.name",
                message=f"{model.kind} {model.name!r} is defined more than once; the last one "
                "applied wins",
                severity=Severity.WARNING,
            )
            found.append(_finding(unit, object_label(model.kind, unit.data), problem))
        seen.add(key)
    for unit, binding in bindings:
        if not binding.azure_identity:
            continue
        reference = _identity_reference(binding, identities)
        if reference is not None:
            found.append(_finding(unit, object_label(binding.kind, unit.data), reference))
    if bindings:
        found += _labelled(units, [b for _, b in bindings])
    return found


def _same_namespace(a: str, b: str) -> bool:
    """Equal namespaces; a manifest without one goes to whatever namespace it is applied in."""
    return a == b or not a or not b


def _name(data: Mapping[str, Any], key: str) -> str:
    meta = data.get("metadata")
    value = meta.get(key) if isinstance(meta, Mapping) else None
    return value if isinstance(value, str) else ""


def _identity_reference(
    binding: AzureIdentityBinding, identities: Sequence[tuple[str, str]]
) -> Problem | None:
    named = [namespace for namespace, name in identities if name == binding.azure_identity]
    if any(_same_namespace(namespace, binding.namespace) for namespace in named):
        return None
    if named:
        return Problem(
            path="spec.azureIdentity",
            message=f"the AzureIdentity {binding.azure_identity!r} given is in namespace "
            f"{named[0]!r}, but a binding only uses identities of its own namespace "
            f"({binding.namespace!r})",
            severity=Severity.WARNING,
        )
    return Problem(
        path="spec.azureIdentity",
        message=f"names no AzureIdentity in the given manifests ({binding.azure_identity!r}); "
        "fine if it already exists in the cluster",
        severity=Severity.WARNING,
    )


def _labelled(
    units: Sequence[ManifestObject], bindings: Sequence[AzureIdentityBinding]
) -> list[Finding]:
    selected = {b.selector for b in bindings if b.selector}
    if any(b.label_selector is not None for b in bindings):
        return []  # a label selector may select pods by any label: nothing to compare
    found: list[Finding] = []
    for unit in units:
        data = unit.data
        if not isinstance(data, Mapping) or is_pod_identity_object(data):
            continue
        reported: set[str] = set()  # a workload repeats its pods' label: say it once
        for path, labels in label_maps(data):
            value = labels.get(BINDING_LABEL)
            if isinstance(value, str) and value not in selected and value not in reported:
                reported.add(value)
                problem = Problem(
                    path=f"{path}.{BINDING_LABEL}",
                    message=f"no AzureIdentityBinding in the given manifests selects {value!r} "
                    f"(selectors: {', '.join(sorted(selected)) or 'none'}); fine if one exists "
                    "in the cluster",
                    severity=Severity.WARNING,
                )
                label = object_label(str(data.get("kind") or "object"), data)
                found.append(_finding(unit, label, problem))
    return found
