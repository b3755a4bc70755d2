"""The date and the machine that head every benchmark's result file, spelled one way.

Imported by the scripts beside it (``python benchmarks/NAME.py`` puts this folder on the path).
"""

from __future__ import annotations

import datetime
import os
import platform


def machine() -> str:
    """The architecture, logical cores and memory, e.g. ``x86_64, 2 cores, 24 GiB``."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.machine()}, {os.cpu_count()} cores, {memory:.0f} GiB"


def today() -> str:
    """Today's date, ISO 8601."""
    return datetime.date.today().isoformat()
