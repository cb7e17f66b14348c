"""``podidentity validate FILE...``: every problem of aad-pod-identity manifests, with its fix.

podidentity validate identity.yaml binding.yaml
kubectl get azureidentities -A -o yaml | podidentity validate -
podidentity validate --output json deploy/*.yaml
"""

from __future__ import annotations

import json
from typing import Any

import click

from podidentity.cli._manifests import Loaded, read_sources
from podidentity.models import (
    Finding,
    ManifestObject,
    Severity,
    is_pod_identity_object,
    manifest_objects,
    validate_documents,
)

__all__ = ["validate"]


@click.command("validate")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, allow_dash=True)
)
@click.option(
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Findings as lines for people, or one JSON document for programs.",
)
@click.option(
    "--strict/--no-strict",
    default=False,
    show_default=True,
    help="Exit 1 on warnings too (a binding naming an identity not in the files, ...).",
)
def validate(files: tuple[str, ...], output: str, strict: bool) -> None:
    """Check aad-pod-identity manifests: print every problem with its fix.

    FILE is a YAML file, possibly with several documents ('-' reads stdin). AzureIdentity,
    AzureIdentityBinding, AzureAssignedIdentity and AzurePodIdentityException objects are
    checked; other kinds are listed as skipped. All files are checked together, so a binding
    in one file may name an identity in another.

    Each finding gives the file, line, document number, object, field path, severity and a
    suggested fix; findings marked 'podidentity convert' (legacy capitalised fields, names
    that are not DNS-1123) are fixed by running 'podidentity convert'.

    Exit status: 0 when there is no error (warnings are printed), 1 when there is an error
    (or a warning, with --strict), 2 on usage errors such as a missing file.
    """
    loaded = read_sources(files)
    findings = validate_documents(loaded.documents)
    objects = manifest_objects(loaded.documents)  # a kubectl List counts as its items
    skipped = [o for o in objects if not is_pod_identity_object(o.data)]
    errors = sum(f.problem.severity is Severity.ERROR for f in findings) + len(loaded.yaml_errors)
    warnings = sum(f.problem.severity is Severity.WARNING for f in findings)
    checked = len(objects) - len(skipped)
    if output == "json":
        click.echo(
            json.dumps(_json(loaded, findings, skipped, errors, warnings, checked), indent=2)
        )
    else:
        _text(loaded, findings, skipped, errors, warnings, checked)
    if errors or (strict and warnings):
        raise SystemExit(1)


def _fix(finding: Finding) -> str | None:
    suggestion = finding.problem.suggestion
    if finding.convertible:
        use = f"use {suggestion!r}; " if suggestion is not None else ""
        return f"{use}run podidentity convert to fix it"
    if suggestion is not None:
        return f"use {suggestion!r}"
    return None


def _text(
    loaded: Loaded,
    findings: list[Finding],
    skipped: list[ManifestObject],
    errors: int,
    warnings: int,
    checked: int,
) -> None:
    for name, err in loaded.yaml_errors:
        click.echo(f"{name}: {err.obj}: error: {err.rule}")
    for finding in findings:
        source = loaded.sources[finding.index]
        problem = finding.problem
        path = f"{problem.path}: " if problem.path else ""
        click.echo(
            f"{source.where}: {finding.obj}: {path}{problem.severity.value}: {problem.message}"
        )
        fix = _fix(finding)
        if fix is not None:
            click.echo(f"    fix: {fix}")
    for obj in skipped:
        where = loaded.sources[obj.index].where + (f": {obj.prefix}" if obj.prefix else "")
        click.echo(f"{where}: {_label(obj.data)}: skipped (not an aad-pod-identity kind)")
    verdict = "FAILED" if errors else "ok"
    click.echo(
        f"{verdict}: {_count(errors, 'error')}, {_count(warnings, 'warning')} in "
        f"{_count(len(loaded.texts), 'file')} ({checked} checked, {len(skipped)} skipped)"
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _label(data: object) -> str:
    """``Kind namespace/name`` of a skipped object, as far as it has them."""
    if not isinstance(data, dict):
        return "object"
    meta = data.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    name, namespace = meta.get("name"), meta.get("namespace")
    kind = str(data.get("kind") or "object")
    if not isinstance(name, str) or not name:
        return kind
    return (
        f"{kind} {namespace}/{name}"
        if isinstance(namespace, str) and namespace
        else f"{kind} {name}"
    )


def _json(
    loaded: Loaded,
    findings: list[Finding],
    skipped: list[ManifestObject],
    errors: int,
    warnings: int,
    checked: int,
) -> dict[str, Any]:
    items: list[dict[str, Any]] = [
        {
            "file": name,
            "document": None,
            "line": None,
            "object": err.obj,
            "path": err.path,
            "severity": "error",
            "message": err.rule,
            "suggestion": None,
            "convertible": False,
            "fix": None,
        }
        for name, err in loaded.yaml_errors
    ]
    for finding in findings:
        source = loaded.sources[finding.index]
        items.append(
            {
                "file": source.file,
                "document": source.document.number,
                "line": source.document.line,
                "object": finding.obj,
                "path": finding.problem.path,
                "severity": finding.problem.severity.value,
                "message": finding.problem.message,
                "suggestion": finding.problem.suggestion,
                "convertible": finding.convertible,
                "fix": _fix(finding),
            }
        )
    return {
        "ok": errors == 0,
        "errors": errors,
        "warnings": warnings,
        "files": list(loaded.texts),
        "checked": checked,
        "findings": items,
        "skipped": [
            {
                "file": loaded.sources[o.index].file,
                "document": loaded.sources[o.index].document.number,
                "line": loaded.sources[o.index].document.line,
                "item": o.prefix or None,
                "object": _label(o.data),
            }
            for o in skipped
        ],
    }
