"""``podidentity convert FILE...``: legacy aad-pod-identity manifests to the current v1 form.

podidentity convert old.yaml > new.yaml
podidentity convert --in-place deploy/*.yaml
cat old.yaml | podidentity convert - | kubectl apply -f -
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import yaml

from podidentity.cli._manifests import STDIN, Loaded, read_sources
from podidentity.errors import ValidationError
from podidentity.models import Change, convert_documents, is_pod_identity_object, parse

__all__ = ["convert"]


@click.command("convert")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, allow_dash=True)
)
@click.option(
    "--in-place/--stdout",
    "in_place",
    default=False,
    show_default=True,
    help="Rewrite each file that changes (atomically), instead of printing all to stdout.",
)
@click.option(
    "--label-selector/--no-label-selector",
    "label_selector",
    default=False,
    show_default=True,
    help="Also turn each binding's 'selector: X' into the equivalent 'labelSelector: "
    "{matchLabels: {aadpodidbinding: X}}'. podidentity only: upstream aad-pod-identity "
    "ignores labelSelector.",
)
@click.option(
    "--check",
    is_flag=True,
    default=False,
    help="Write nothing; list what would change and exit 1 if anything would (for CI).",
)
def convert(files: tuple[str, ...], in_place: bool, label_selector: bool, check: bool) -> None:
    """Rewrite legacy aad-pod-identity manifests in the current v1 form.

    FILE is a YAML file, possibly with several documents ('-' reads stdin). What changes:
    capitalised fields become camelCase (ClientID -> clientID, ResourceID -> resourceID,
    AzureIdentity -> azureIdentity, Selector -> selector, Type -> type, ...), a spec.type
    written as text becomes its integer, names that are not DNS-1123 become valid
    (my_identity -> my-identity) together with every reference to them, and a binding
    selector that is not a valid label value changes together with the 'aadpodidbinding'
    labels of pods and workloads that carry it. Other kinds pass through unchanged. All files
    are converted together; converting converted manifests changes nothing.

    The output is re-written YAML: comments and formatting are lost (files without changes
    are left untouched with --in-place). Every change is listed on stderr as
    'file:line: document N: object: field path: old -> new'.

    --check writes nothing and exits 1 when something would change (a CI gate).

    Nothing is written unless every file parses: a file that is not valid YAML, or an object
    that cannot be read, is reported and the exit status is 1. Exit status 2 is a usage error.
    """
    if in_place and check:
        raise click.UsageError("--check writes nothing: leave out --in-place")
    if in_place and STDIN in files:
        raise click.UsageError("--in-place cannot rewrite stdin ('-'); print to stdout instead")
    loaded = read_sources(files)
    failures = _unreadable(loaded)
    if failures:
        for line in failures:
            click.echo(f"error: {line}", err=True)
        click.echo("nothing converted: fix the errors above first", err=True)
        raise SystemExit(1)
    try:
        converted, changes = convert_documents(loaded.documents, label_selectors=label_selector)
    except ValidationError as err:
        click.echo(f"error: {err}", err=True)
        click.echo("nothing converted", err=True)
        raise SystemExit(1) from None
    for change in changes:
        click.echo(f"{loaded.sources[change.index].where}: {change}", err=True)
    if check:
        _summary(changes, loaded, in_place=False, check=True)
        raise SystemExit(1 if changes else 0)
    outputs = _outputs(loaded, converted)
    if in_place:
        changed = {loaded.sources[c.index].file for c in changes}
        _write_all({name: text for name, text in outputs.items() if name in changed})
    else:
        click.echo("---\n".join(outputs.values()), nl=False)
    _summary(changes, loaded, in_place)


def _unreadable(loaded: Loaded) -> list[str]:
    """Every YAML error and every object of our kinds that cannot be read, converted or not."""
    lines = [f"{name}: {err.obj}: {err.rule}" for name, err in loaded.yaml_errors]
    for source in loaded.sources:
        if not is_pod_identity_object(source.document.data):
            continue
        try:
            convert_documents([source.document.data])
        except ValidationError as err:
            found = err
            try:  # say it as the user wrote it (spec.ClientID, not spec.clientID), if it can
                parse(source.document.data)
            except ValidationError as as_written:
                found = as_written
            obj = found.obj.split(": ", 1)[-1] if found.obj else ""
            lines.append(f"{source.where}: {obj}: {found.path}: {found.rule}")
    return lines


def _outputs(loaded: Loaded, converted: Sequence[Any]) -> dict[str, str]:
    """Each file's converted documents as one YAML stream, in the files' order."""
    grouped: dict[str, list[Any]] = {name: [] for name in loaded.texts}
    for source, data in zip(loaded.sources, converted, strict=True):
        grouped[source.file].append(data)
    return {
        name: yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True) if docs else ""
        for name, docs in grouped.items()
    }


def _write_all(outputs: dict[str, str]) -> None:
    """Write every file atomically: all temporary files first, then rename each over its file.

    A failure while writing leaves every file as it was (the temporary files are removed).
    """
    staged: list[tuple[str, str]] = []
    try:
        for name, text in outputs.items():
            staged.append((_stage(name, text), name))
    except OSError as err:
        for temp, _ in staged:
            with contextlib.suppress(OSError):
                os.unlink(temp)
        raise click.ClickException(f"cannot write: {err}; no file was changed") from err
    for temp, name in staged:
        os.replace(temp, os.path.realpath(name))


def _stage(name: str, text: str) -> str:
    """Write ``text`` to a temporary file next to ``name``, with its mode; return its path."""
    target = Path(os.path.realpath(name))  # through a symlink: the link stays a link
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp, target.stat().st_mode & 0o7777)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return temp


def _summary(changes: list[Change], loaded: Loaded, in_place: bool, check: bool = False) -> None:
    if not changes:
        click.echo("nothing to convert: already in the v1 form", err=True)
        return
    files = {loaded.sources[c.index].file for c in changes}
    where = "would convert" if check else "rewrote" if in_place else "converted"
    noun = "file" if len(files) == 1 else "files"
    click.echo(f"{where} {len(files)} {noun}: {len(changes)} changes", err=True)
