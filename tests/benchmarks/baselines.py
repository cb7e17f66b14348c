"""Baselines shared by the benchmarks: the same kind of work done the plainest way.

A C baseline (``json.loads``) says what a client pays at least; its speed relative to Python
code differs between machines and Python versions, so benchmarks put a pure-Python baseline
beside it (:func:`py_json_loads`: the standard library's own pure-Python JSON decoder), and a
ratio against that one carries over between machines better.
"""

from __future__ import annotations

import json
import json.decoder
import json.scanner
from typing import Any

__all__ = ["py_json_loads"]


def _pure_python_decoder() -> json.JSONDecoder:
    decoder = json.JSONDecoder()
    # JSONDecoder picks the C scanner and string parser when they exist; swap in the
    # pure-Python ones the stdlib keeps as fallbacks (same grammar, same results).
    decoder.parse_string = json.decoder.py_scanstring  # type: ignore[attr-defined]
    decoder.scan_once = json.scanner.py_make_scanner(decoder)  # type: ignore[attr-defined]
    return decoder


_DECODER = _pure_python_decoder()


def py_json_loads(text: str | bytes) -> Any:
    """``json.loads`` done by the standard library's pure-Python decoder."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return _DECODER.decode(text)
