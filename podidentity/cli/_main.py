"""The ``podidentity`` command group; each subcommand group lives in its own module."""

from __future__ import annotations

import click

from podidentity.cli._logging import configure_logging

__all__ = ["main"]


@click.group(
    context_settings={"auto_envvar_prefix": "PODIDENTITY", "help_option_names": ["-h", "--help"]}
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines as text, or as JSON objects for a log collector.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
    help="The least severe messages to log.",
)
@click.version_option(package_name="podidentity")
def main(log_format: str, log_level: str) -> None:
    """Azure AD Pod Identity for Kubernetes, in Python.

    Every option can also be set with an environment variable named after the command path:
    PODIDENTITY_LOG_FORMAT, PODIDENTITY_SECRETS_FETCH_SPEC, ...
    """
    configure_logging(log_format, log_level)
