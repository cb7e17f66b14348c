"""Dispatch on ``apiVersion`` / ``kind``, and load multi-document YAML manifests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

import attrs
import yaml

from podidentity.errors import ValidationError
from podidentity.models._resource import API_VERSION, GROUP, object_label
from podidentity.models._wire import expect_mapping
from podidentity.models.assigned import AzureAssignedIdentity
from podidentity.models.binding import AzureIdentityBinding
from podidentity.models.exception import AzurePodIdentityException
from podidentity.models.identity import AzureIdentity

__all__ = ["KINDS", "Document", "Model", "load_documents", "load_yaml", "parse"]

Model: TypeAlias = (
    AzureIdentity | AzureIdentityBinding | AzureAssignedIdentity | AzurePodIdentityException
)
"""Any of the four ``aadpodidentity.k8s.io/v1`` kinds."""

KINDS: Mapping[str, type[Model]] = {
    cls.kind: cls
    for cls in (
        AzureAssignedIdentity,
        AzureIdentity,
        AzureIdentityBinding,
        AzurePodIdentityException,
    )
}
"""The model class for each kind name."""


def parse(obj: Mapping[str, Any]) -> Model:
    """Build the model for an object of one of our kinds, chosen by ``apiVersion`` and ``kind``.

    Raises:
        ValidationError: not an object, another API group or version, an unknown kind, or an
            object that does not have its kind's structure.
    """
    data = expect_mapping(obj, "")
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise ValidationError(
            "kind", f"expected one of {', '.join(sorted(KINDS))}", kind, obj=_label(kind, data)
        )
    if data.get("apiVersion") != API_VERSION:
        raise ValidationError(
            "apiVersion",
            f"expected {API_VERSION!r}",
            data.get("apiVersion"),
            obj=object_label(kind, data),
        )
    return KINDS[kind].from_dict(data)


def _label(kind: object, data: Mapping[str, Any]) -> str:
    return object_label(kind if isinstance(kind, str) and kind else "object", data)


class _Loader(yaml.SafeLoader):
    """SafeLoader that leaves timestamps as text, as Kubernetes' YAML-to-JSON step does."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@attrs.frozen
class Document:
    """One non-empty document of a YAML stream, as YAML gave it.

    Attributes:
        number: its position in the stream, counted from 1 with empty documents included
            (what ``load_yaml``'s errors call ``document N``).
        line: the line (from 1) where it starts.
        data: the loaded value: usually a dict, but any YAML value a document can hold.
    """

    number: int
    line: int
    data: Any

    @property
    def where(self) -> str:
        """``document N (line L)``, the prefix used in messages."""
        return f"document {self.number} (line {self.line})"


def load_documents(text: str) -> list[Document]:
    """Load every non-empty document of a YAML stream without interpreting it.

    The documents are the raw values (timestamps kept as text, as ``load_yaml`` does), so a
    tool can look at how a manifest was *written* (legacy spellings, string types) before the
    models read it.

    Raises:
        ValidationError: invalid YAML; the message names the document (counted from 1).
    """
    found: list[Document] = []
    loader = _Loader(text)
    number = 0
    try:
        while True:
            number += 1
            try:
                if not loader.check_node():
                    break
                node = loader.get_node()
                data = loader.construct_document(node) if node is not None else None
            except RecursionError as err:
                raise ValidationError(
                    "", "YAML nested too deeply", obj=f"document {number}"
                ) from err
            except yaml.YAMLError as err:
                raise ValidationError(
                    "", f"invalid YAML: {_yaml_message(err)}", obj=f"document {number}"
                ) from err
            if data is None:
                continue
            line = node.start_mark.line + 1 if node is not None else 0
            found.append(Document(number, line, data))
    finally:
        loader.dispose()
    return found


def load_yaml(text: str) -> list[Model | dict[str, Any]]:
    """Load a multi-document manifest: models for our kinds, plain dicts for the rest.

    Empty documents are skipped. Objects of other kinds (Secrets, Deployments, ...) come back
    as the dicts YAML gave, so a manifest can be loaded, inspected and written back whole.
    Objects of our API group must parse; a typo in a kind is an error, not a silent dict.

    Raises:
        ValidationError: invalid YAML, a document that is not an object, or an object of
            our group that does not parse; the message gives the document number (from 1)
            and its first line.
    """
    found: list[Model | dict[str, Any]] = []
    for document in load_documents(text):
        try:
            found.append(_one(document.data))
        except ValidationError as err:
            where = document.where
            raise err.within(f"{where}: {err.obj}" if err.obj else where) from err
    return found


def _one(data: object) -> Model | dict[str, Any]:
    mapping = expect_mapping(data, "")
    api_version = mapping.get("apiVersion")
    ours = isinstance(api_version, str) and api_version.startswith(f"{GROUP}/")
    if ours or mapping.get("kind") in KINDS:
        return parse(mapping)
    return dict(mapping)


def _yaml_message(err: yaml.YAMLError) -> str:
    if isinstance(err, yaml.MarkedYAMLError) and err.problem_mark is not None:
        mark = err.problem_mark
        problem = err.problem or "syntax error"
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(err)
