"""Reading manifest files for ``validate`` and ``convert``: files or stdin, documents indexed.

The commands work on the documents of all their files at once (so references across files are
seen); :class:`Source` remembers which file and document each one came from.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import attrs
import click

from podidentity.errors import ValidationError
from podidentity.models import Document, load_documents

__all__ = ["STDIN", "Loaded", "Source", "read_sources"]

STDIN = "-"
"""The file name that means standard input."""


@attrs.frozen
class Source:
    """Where one document came from."""

    file: str
    document: Document

    @property
    def where(self) -> str:
        """``file:line: document N``, the prefix of messages about this document."""
        return f"{self.file}:{self.document.line}: document {self.document.number}"


@attrs.frozen
class Loaded:
    """The documents of every file, in order, and the files that are not valid YAML."""

    texts: dict[str, str]
    sources: list[Source]
    yaml_errors: list[tuple[str, ValidationError]]

    @property
    def documents(self) -> list[Any]:
        """The documents' data, in the order of :attr:`sources`."""
        return [source.document.data for source in self.sources]


def read_sources(files: Sequence[str]) -> Loaded:
    """Read and load every file (``-`` is stdin, at most once).

    Raises:
        click.BadParameter: a file cannot be read or is not UTF-8 (a usage error, exit 2).
    """
    if list(files).count(STDIN) > 1:
        raise click.BadParameter("'-' (stdin) may be given only once", param_hint="FILE")
    files = list(dict.fromkeys(files))  # a file named twice is still one file
    texts: dict[str, str] = {}
    sources: list[Source] = []
    errors: list[tuple[str, ValidationError]] = []
    for name in files:
        text = _read(name)
        texts[name] = text
        try:
            documents = load_documents(text)
        except ValidationError as err:
            errors.append((name, err))
            continue
        sources += [Source(name, document) for document in documents]
    return Loaded(texts, sources, errors)


def _read(name: str) -> str:
    try:
        if name == STDIN:
            return sys.stdin.read()
        with open(name, encoding="utf-8") as stream:
            return stream.read()
    except UnicodeDecodeError as err:
        raise click.BadParameter(
            f"{name}: not UTF-8 text ({err.reason} at byte {err.start})", param_hint="FILE"
        ) from err
    except OSError as err:
        raise click.BadParameter(
            f"{name}: cannot read: {err.strerror or err}", param_hint="FILE"
        ) from err
