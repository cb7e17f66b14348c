"""The ``podidentity`` command line (``python -m podidentity``), built on click.

One module per command group: :mod:`podidentity.cli.secrets` is ``podidentity secrets``. A new
group (``mic``, ``nmi``, ``validate``, ...) is a module with a ``click.Group`` registered below.
"""

from __future__ import annotations

from podidentity.cli._main import main
from podidentity.cli.mic import mic
from podidentity.cli.nmi import nmi
from podidentity.cli.secrets import secrets

__all__ = ["main"]

main.add_command(secrets)
main.add_command(mic)
main.add_command(nmi)
