"""``python -m phaseloop`` is the ``phaseloop`` command (phaseloop.serve)."""
from __future__ import annotations

import sys

from .serve import load_app, main

__all__ = ["load_app", "main"]

if __name__ == "__main__":
    sys.exit(main())
