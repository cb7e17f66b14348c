"""Deliver outputs as environment variables: to an exec'd program, or as a ``.env`` file."""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

from podidentity.errors import ConfigError, ValidationError
from podidentity.keyvault._core import Output

__all__ = ["EnvFileSink", "env_values", "exec_with_env", "write_env_file"]

logger = logging.getLogger("podidentity.keyvault")

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def env_values(outputs: Mapping[str, Output]) -> dict[str, str]:
    """The outputs as environment variables: the alias is the variable's name.

    Raises:
        ValidationError: an alias that is not a variable name (``db-password``: set
            ``alias: DB_PASSWORD``), or a value that is binary or contains a NUL byte.
    """
    env: dict[str, str] = {}
    for name, output in outputs.items():
        if not _ENV_NAME.match(name):
            raise ValidationError(
                "alias",
                f"{name!r} is not an environment variable name (letters, digits and '_', not "
                "starting with a digit); set an alias such as "
                f"{re.sub(r'[^A-Za-z0-9_]', '_', name).upper()!r}",
                obj=output.object.label,
            )
        text = output.text
        if "\0" in text:
            raise ValidationError(
                "alias",
                f"output {name!r} contains a NUL byte, which no environment can hold",
                obj=output.object.label,
            )
        env[name] = text
    return env


def exec_with_env(
    outputs: Mapping[str, Output],
    argv: Sequence[str],
    *,
    environ: Mapping[str, str] | None = None,
) -> NoReturn:
    """Replace this process with ``argv``, its environment plus the outputs.

    The values exist only in the new program's environment: nothing is written to disk.

    Raises:
        ConfigError: an empty command, or the program cannot be executed.
        ValidationError: see :func:`env_values`.
    """
    if not argv:
        raise ConfigError("no command to run: give it after '--'")
    env = {**(os.environ if environ is None else environ), **env_values(outputs)}
    logger.info("exec %s with %d values from Key Vault", argv[0], len(outputs))
    try:
        os.execvpe(argv[0], list(argv), env)  # noqa: S606 - the user's own command, by design
    except OSError as err:
        raise ConfigError(f"cannot run {argv[0]!r}: {err.strerror}") from err


def _quote(value: str) -> str:
    # POSIX shell single quotes keep everything literal; a quote is closed, escaped, reopened.
    return "'" + value.replace("'", "'\\''") + "'"


def write_env_file(
    path: str | os.PathLike[str], outputs: Mapping[str, Output], *, mode: int = 0o600
) -> None:
    """Write the outputs as ``NAME='value'`` lines, atomically, with ``mode`` (owner-only).

    The file is POSIX shell syntax (``set -a; . ./app.env``); values are single-quoted, so
    ``$``, backslashes and newlines stay literal.

    Raises:
        ValidationError: see :func:`env_values`.
        ConfigError: the file cannot be written; an existing file is left as it was.
    """
    values = env_values(outputs)
    target = Path(path)
    text = "".join(f"{name}={_quote(value)}\n" for name, value in values.items())
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
    except OSError as err:
        raise ConfigError(f"cannot write {target}: {err.strerror}") from err
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except OSError as err:
        Path(temporary).unlink(missing_ok=True)
        raise ConfigError(f"cannot write {target}: {err.strerror}") from err
    logger.info("wrote %d values to %s", len(values), target)


class EnvFileSink:
    """A sink (for :class:`~podidentity.keyvault.Watcher`) writing a ``.env`` file.

    Args:
        path: the file; replaced atomically on every write.
        mode: its mode (owner read/write by default).
    """

    def __init__(self, path: str | os.PathLike[str], *, mode: int = 0o600) -> None:
        self.path = Path(path)
        self.mode = mode

    def __repr__(self) -> str:
        return f"EnvFileSink({str(self.path)!r})"

    def write(self, outputs: Mapping[str, Output]) -> None:
        """Write every output as ``NAME='value'`` (see :func:`write_env_file`)."""
        write_env_file(self.path, outputs, mode=self.mode)
