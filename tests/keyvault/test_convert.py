"""The pure conversions: encodings, multi-value splits, chain order."""

from __future__ import annotations

import base64
import itertools
import json

from hypothesis import given
from hypothesis import strategies as st

from podidentity.keyvault import VaultObject
from podidentity.keyvault._convert import decode_secret, order_chain, split_values
from tests.keyvault.chains import three_level_chain

KEYS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)


@given(st.dictionaries(KEYS, st.text(), min_size=1, max_size=8))
def test_a_json_mapping_splits_into_its_entries(document: dict[str, str]) -> None:
    obj = VaultObject(vault="kv-1", name="multi", split="json")
    assert split_values(obj, json.dumps(document)) == {
        k: v.encode("utf-8") for k, v in document.items()
    }


@given(st.binary())
def test_base64_and_hex_decode_to_the_bytes(data: bytes) -> None:
    b64 = VaultObject(vault="kv-1", name="b", encoding="base64")
    hexed = VaultObject(vault="kv-1", name="h", encoding="hex")
    assert decode_secret(b64, base64.b64encode(data).decode()) == data
    assert decode_secret(hexed, data.hex()) == data


def test_the_chain_is_ordered_whatever_order_it_was_stored_in() -> None:
    issued, expected = three_level_chain()
    for stored in itertools.permutations(expected):
        assert order_chain(issued.private_key, list(stored)) == expected
