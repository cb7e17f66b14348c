"""docs/keyvault.md runs, block after block; every public name has a reference entry."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest

import podidentity.keyvault
import podidentity.keyvault.aio

ROOT = Path(__file__).resolve().parents[2]


def test_the_key_vault_guide_runs() -> None:
    text = (ROOT / "docs" / "keyvault.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert len(blocks) >= 8
    namespace: dict[str, typing.Any] = {"__name__": "docs_keyvault"}
    try:
        for number, block in enumerate(blocks, 1):
            exec(compile(block, f"docs/keyvault.md#block{number}", "exec"), namespace)  # noqa: S102
    except BaseException:
        # The last block restores the environment and stops the world; do it if it did not run.
        namespace["pod"].__exit__(None, None, None)
        namespace["azure"].stop()
        raise


REFERENCE = (ROOT / "docs" / "reference" / "keyvault.md").read_text()
NAMES = [("podidentity.keyvault", n) for n in podidentity.keyvault.__all__] + [
    ("podidentity.keyvault.aio", n) for n in podidentity.keyvault.aio.__all__
]


@pytest.mark.parametrize(("module", "name"), NAMES)
def test_every_public_name_is_in_the_reference(module: str, name: str) -> None:
    obj = getattr(__import__(module, fromlist=[name]), name)
    # Names the aio module re-exports unchanged are documented once, under the sync module.
    owner = module if f"::: {module}.{name}\n" in REFERENCE else "podidentity.keyvault"
    assert f"::: {owner}.{name}\n" in REFERENCE
    assert getattr(podidentity.keyvault, name, obj) is obj or owner == module
    if typing.get_origin(obj) is not typing.Literal:
        assert obj.__doc__


def test_the_aio_module_has_the_same_names() -> None:
    assert podidentity.keyvault.aio.__all__ == podidentity.keyvault.__all__
    assert podidentity.keyvault.__all__ == sorted(podidentity.keyvault.__all__)
