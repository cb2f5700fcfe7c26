"""``python -m bench check``: the docs' speed targets against the newest results."""

from __future__ import annotations

import sys

from bench import check

USAGE = "usage: python -m bench check"

if __name__ == "__main__":
    if sys.argv[1:] != ["check"]:
        print(USAGE, file=sys.stderr)
        sys.exit(2)
    sys.exit(check.main())
