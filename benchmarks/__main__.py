"""``python -m benchmarks`` (``make bench``): the whole matrix, headless; see ``_runner``."""

from __future__ import annotations

import sys

from benchmarks._runner import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
