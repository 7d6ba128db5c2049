"""``python -m carrier``: the ``carrier`` command, for environments without its script."""

from __future__ import annotations

import sys

from carrier.cli import main

if __name__ == "__main__":
    sys.exit(main())
