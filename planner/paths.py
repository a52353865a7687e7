"""Where the shipped configs live (the repository's configs/ folder, next to the packages)."""

from __future__ import annotations

import os

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


def config_path(*parts: str) -> str:
    return os.path.join(CONFIG_DIR, *parts)
