"""Sizes as LXC, cgroups and the profiles write them: binary units, '512M'."""

from __future__ import annotations

import re

_SIZE = re.compile(r"^\s*(\d+)\s*([kKmMgGtT]?)[iI]?[bB]?\s*$")


def parse_size(text: str | int) -> int | None:
    """'512M' -> 536870912 (binary units, as LXC and cgroups read them); None if not a size.

    >>> parse_size("1G"), parse_size("4096"), parse_size("lots")
    (1073741824, 4096, None)
    """
    match = _SIZE.match(str(text))
    if not match:
        return None
    return int(match[1]) * 1024 ** "_KMGT".index(match[2].upper() or "_")


def format_size(size: int) -> str:
    """536870912 -> '512M'."""
    for unit, factor in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if size % factor == 0 and size >= factor:
            return f"{size // factor}{unit}"
    return str(size)
