"""A fake ``iptables`` program for tests: the nat table in a JSON file, every call logged.

Installed as ``iptables`` first on ``PATH`` by the tests, it is run as a real child process by
the code under test. It understands what the token proxy uses (``-t nat`` with ``-N``, ``-F``,
``-X``, ``-A``, ``-I``, ``-D``, ``-C``, ``-S``), compares rules by their argument lists, and
fails with real iptables' messages and exit status 1. Environment: ``FAKE_IPTABLES_STATE``
(the table), ``FAKE_IPTABLES_LOG`` (one JSON argv per line), ``FAKE_IPTABLES_DENY`` (when set,
every call fails as a non-root user's would).
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from pathlib import Path

BUILTIN = ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")


def load(path: Path) -> dict[str, list[list[str]]]:
    if path.exists():
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    return {name: [] for name in BUILTIN}


def fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    # One call at a time, as the real program's xtables lock makes it.
    with open(os.environ["FAKE_IPTABLES_STATE"] + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return locked(argv)


def locked(argv: list[str]) -> int:
    with open(os.environ["FAKE_IPTABLES_LOG"], "a") as log:
        log.write(json.dumps(argv) + "\n")
    if os.environ.get("FAKE_IPTABLES_DENY"):
        return fail(
            "iptables v1.8.9 (legacy): can't initialize iptables table `nat': Permission denied "
            "(you must be root)"
        )
    if argv[:2] != ["-t", "nat"] or len(argv) < 4:
        return fail(f"fake iptables: unsupported arguments {argv}")
    path = Path(os.environ["FAKE_IPTABLES_STATE"])
    table = load(path)
    command, chain, rest = argv[2], argv[3], argv[4:]
    missing = "iptables: No chain/target/match by that name."
    if command == "-N":
        if chain in table:
            return fail("iptables: Chain already exists.")
        table[chain] = []
    elif chain not in table:
        return fail(missing)
    elif command == "-S":
        print(f"-N {chain}" if chain not in BUILTIN else f"-P {chain} ACCEPT")
        for rule in table[chain]:
            print(" ".join([f"-A {chain}", *rule]))
        return 0
    elif command == "-C":
        if rest not in table[chain]:
            return fail("iptables: Bad rule (does a matching rule exist in that chain?).")
        return 0
    elif command == "-A":
        table[chain].append(rest)
    elif command == "-I":
        position, rule = int(rest[0]), rest[1:]
        table[chain].insert(position - 1, rule)
    elif command == "-D":
        if rest not in table[chain]:
            return fail("iptables: Bad rule (does a matching rule exist in that chain?).")
        table[chain].remove(rest)
    elif command == "-F":
        table[chain] = []
    elif command == "-X":
        if chain in BUILTIN:
            return fail("iptables: Can't delete built-in chain.")
        if table[chain]:
            return fail("iptables: Directory not empty.")
        if any(rule[-2:] == ["-j", chain] for rules in table.values() for rule in rules):
            return fail("iptables: Too many links.")
        del table[chain]
    else:
        return fail(f"fake iptables: unsupported command {command}")
    # Replaced whole, so a reader never sees half a table.
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(table))
    os.replace(partial, path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
