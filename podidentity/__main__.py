"""``python -m podidentity``: the command line."""

from __future__ import annotations

from podidentity.cli import main

if __name__ == "__main__":
    main()
