"""Project checks. ``nox`` runs lint, typecheck, tests and docs; ``nox -s bench`` the benchmarks."""

from __future__ import annotations

import os

import nox

# uv makes the sessions' installs fast when it is there; it must never try to download a
# Python build (there is no internet on CI, only the package registries).
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")
# uv does not compile bytecode unless asked; without .pyc files every session start re-compiles
# every imported module of the virtualenv.
os.environ.setdefault("UV_COMPILE_BYTECODE", "1")
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "typecheck", "tests", "docs"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"
SUPPORTED = ["3.10", "3.11", "3.12", "3.13"]
# Some machines set PYTHONDONTWRITEBYTECODE; then pytest re-rewrites every test module's asserts
# and Python re-compiles the project's modules in every process (each xdist worker too).
WRITE_BYTECODE = {"PYTHONDONTWRITEBYTECODE": ""}


def _xdist(posargs: list[str]) -> list[str]:
    """``-n 2 --dist worksteal`` unless the caller chose (``-n N``, ``--dist``, ``-p no:xdist``).

    worksteal: test times range from milliseconds to seconds, and xdist's default ``load``
    hands out fixed chunks up front, so a worker with slow tests queued could end the run alone
    while the other idles; with worksteal an idle worker takes half the other's queue.
    """
    chosen = any(
        a.startswith(("-n", "--numprocesses", "--dist")) or a == "no:xdist" for a in posargs
    )
    return [] if chosen else ["-n", "2", "--dist", "worksteal"]


def _extra(name: str) -> list[str]:
    """The requirements of one of pyproject.toml's extras, without the project itself."""
    extras: dict[str, list[str]] = nox.project.load_toml("pyproject.toml")["project"][
        "optional-dependencies"
    ]
    return extras[name]


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Ruff (lint and format) and the import-linter layer contract.

    Neither needs podidentity installed: ruff reads files, and import-linter builds its graph
    from the source tree (from this directory) and names external packages by their imports.
    Installing the project would install all of its dependencies in one more virtualenv.
    """
    session.install(*_extra("lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install("-e", ".[typecheck]")
    session.run("mypy")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite in two processes (pytest-xdist) with coverage of every process.

    Benchmarks are not part of it. ``-n 2``: two cores; more workers barely help there.
    """
    session.install("-e", ".[test]")
    session.run("coverage", "erase")
    session.run(
        "coverage",
        "run",
        "-m",
        "pytest",
        *_xdist(session.posargs),
        *session.posargs,
        env=WRITE_BYTECODE,
    )
    session.run("coverage", "combine", "-q", success_codes=[0, 1])
    session.run("coverage", "report", "--fail-under=85")


@nox.session(python=SUPPORTED, name="tests-all")
def tests_all(session: nox.Session) -> None:
    """The test suite on every supported Python (not part of the default run)."""
    session.install("-e", ".[test]")
    session.run("pytest", "-q", *_xdist(session.posargs), *session.posargs, env=WRITE_BYTECODE)


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation site strictly (every warning is an error)."""
    session.install("-e", ".[docs]")
    session.run(
        "mkdocs", "build", "--strict", "--site-dir", "site", env={"NO_MKDOCS_2_WARNING": "1"}
    )


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks through tests/benchmarks/harness.py; then docs/benchmarks.md from their JSON.

    ``nox -s bench -- --quick`` is a smoke run (its results go to .bench/, not to the docs).
    """
    session.install("-e", ".[bench]")
    session.run(
        "pytest",
        "tests/benchmarks",
        "-o",
        "python_files=bench_*.py",
        "-p",
        "no:cacheprovider",
        "-s",
        "-q",
        *session.posargs,
        env=WRITE_BYTECODE,
    )
    if "--quick" not in session.posargs and not any(
        a.startswith("--bench-out") for a in session.posargs
    ):
        session.run("python", "-m", "tests.benchmarks.render")
