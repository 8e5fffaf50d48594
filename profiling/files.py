"""Output files: every file the toolkit writes is readable and writable by its owner only."""

from __future__ import annotations

import os
from pathlib import Path


def private_open(path: str | Path, mode: str = "w"):
    """``path`` opened for writing (``mode`` "w" text, UTF-8, no newline translation, or "wb"),
    created with permissions 0600 and truncated."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    if "b" in mode:
        return os.fdopen(fd, mode)
    return os.fdopen(fd, mode, encoding="utf-8", newline="")
