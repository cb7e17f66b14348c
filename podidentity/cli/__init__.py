"""The ``podidentity`` command line (``python -m podidentity``), built on click.

One module per command group: :mod:`podidentity.cli.secrets` is ``podidentity secrets``. A new
group (``mic``, ``nmi``, ``validate``, ...) is a module with a ``click.Group`` registered below.
"""

from __future__ import annotations

from podidentity.cli._main import main
from podidentity.cli.convert import convert
from podidentity.cli.demo import demo
from podidentity.cli.mic import mic
from podidentity.cli.nmi import nmi
from podidentity.cli.sandbox import sandbox
from podidentity.cli.secrets import secrets
from podidentity.cli.validate import validate

__all__ = ["main"]

main.add_command(secrets)
main.add_command(mic)
main.add_command(nmi)
main.add_command(sandbox)
main.add_command(demo)
main.add_command(validate)
main.add_command(convert)
