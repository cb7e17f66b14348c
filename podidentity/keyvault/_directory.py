"""A directory of secret files, replaced as a set the way Kubernetes' AtomicWriter does it.

Layout (``out/`` is the directory given)::

    out/..2026_12_01_10_00_00.1a2b3c/   the current set, one file per output
    out/..data -> ..2026_12_01_10_00_00.1a2b3c
    out/db-password -> ..data/db-password

A write puts every file of the new set into a fresh timestamped directory (each created
exclusively with its mode, written and fsynced), then renames a new ``..data`` symlink over the
old one: one atomic step, so a reader that opens ``out/db-password`` sees the old set or the
new one, never a mix. Only then are the visible links added or removed and the old set deleted.
If anything fails before the swap the new directory is removed and the old set is untouched.
A reader whose open went through the old ``..data`` just as that set was deleted gets "no such
file" and should open again (as with the kubelet's Secret volumes); it never gets a partial file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from podidentity.errors import ConfigError
from podidentity.keyvault._core import Output

__all__ = ["DirectorySink"]

logger = logging.getLogger("podidentity.keyvault")

DATA = "..data"


class DirectorySink:
    """Writes outputs as files into ``path``, the whole set swapped atomically.

    Args:
        path: the directory (created if missing). Files other than podidentity's links are
            never touched; an output whose name is taken by such a file is refused.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        # What the last write put where, by digest: an unchanged file is hard-linked from the
        # previous set instead of written and fsynced again (a poll that changed one secret
        # of a hundred writes one file). Files are never modified once written, so sharing
        # an inode between two sets is safe.
        self._written: dict[str, tuple[bytes, int]] = {}
        self._written_dir: str | None = None

    def __repr__(self) -> str:
        return f"DirectorySink({str(self.path)!r})"

    def write(self, outputs: Mapping[str, Output]) -> None:
        """Replace the directory's set of files with ``outputs``.

        Raises:
            ConfigError: the directory cannot be written (naming the output and the reason) or
                a name is taken by a file podidentity does not manage; the previous set stays.
        """
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"cannot create {self.path}: {err.strerror}") from err
        visible = sorted({name.split("/", 1)[0] for name in outputs})
        for top in visible:
            self._check_visible(top, outputs)
        stamp = dt.datetime.now(dt.timezone.utc).strftime("..%Y_%m_%d_%H_%M_%S.")
        try:
            new = Path(tempfile.mkdtemp(prefix=stamp, dir=self.path))
        except OSError as err:
            raise ConfigError(f"cannot write to {self.path}: {err.strerror}") from err
        try:
            new.chmod(0o755)
            for output in outputs.values():
                if not self._link_unchanged(new, output):
                    self._write_file(new, output)
            _fsync_dir(new)
            old = self._swap(new)
        except BaseException:
            shutil.rmtree(new, ignore_errors=True)
            raise
        self._written = {o.name: (_digest(o.data), o.mode) for o in outputs.values()}
        self._written_dir = new.name
        self._link_visible(visible)
        if old is not None and old != new.name:
            shutil.rmtree(self.path / old, ignore_errors=True)
        _fsync_dir(self.path)
        logger.info("wrote %d files to %s", len(outputs), self.path)

    def _check_visible(self, top: str, outputs: Mapping[str, Output]) -> None:
        link = self.path / top
        owner = next(o for n, o in outputs.items() if n.split("/", 1)[0] == top)
        try:
            managed = self._managed(link, top)
        except OSError as err:
            raise ConfigError(
                f"{owner.object.label}: cannot write {owner.name!r} to {self.path}: {err.strerror}"
            ) from err
        if not managed:
            raise ConfigError(
                f"{owner.object.label}: cannot write {owner.name!r} to {self.path}: {link} "
                "exists and is not a file podidentity manages; remove it or choose another alias"
            )

    @staticmethod
    def _managed(link: Path, top: str) -> bool:
        if link.is_symlink():
            return os.readlink(link) == f"{DATA}/{top}"
        return not link.exists()

    def _link_unchanged(self, directory: Path, output: Output) -> bool:
        if self._written.get(output.name) != (_digest(output.data), output.mode):
            return False
        data = self.path / DATA
        if self._written_dir is None or not data.is_symlink():
            return False
        if os.readlink(data) != self._written_dir:
            return False  # someone else switched the set: do not trust what we remember
        target = directory / output.name
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(self.path / self._written_dir / output.name, target)
        except OSError:
            return False  # the old file is gone or links are not supported: write it
        return True

    def _write_file(self, directory: Path, output: Output) -> None:
        target = directory / output.name
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, output.mode)
            try:
                os.fchmod(fd, output.mode)  # the umask must not widen or narrow the mode
                view = memoryview(output.data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as err:
            raise ConfigError(
                f"{output.object.label}: cannot write {output.name!r} to {self.path}: "
                f"{err.strerror}"
            ) from err

    def _swap(self, new: Path) -> str | None:
        data = self.path / DATA
        old = os.readlink(data) if data.is_symlink() else None
        temporary = self.path / f"{DATA}_tmp"
        try:
            if temporary.is_symlink() or temporary.exists():
                temporary.unlink()
            temporary.symlink_to(new.name)
            os.replace(temporary, data)
        except OSError as err:
            raise ConfigError(f"cannot switch {data} to the new files: {err.strerror}") from err
        return old

    def _link_visible(self, visible: list[str]) -> None:
        wanted = set(visible)
        for top in visible:
            link = self.path / top
            if not link.is_symlink():
                link.symlink_to(f"{DATA}/{top}")
        for entry in self.path.iterdir():
            if entry.name.startswith(".") or entry.name in wanted or not entry.is_symlink():
                continue
            if os.readlink(entry) == f"{DATA}/{entry.name}":
                entry.unlink()  # an output that is no longer part of the set


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
