"""Commands a test pretends are not installed."""

from __future__ import annotations

import os
from pathlib import Path


def path_without(prefixes: tuple[str, ...], directory: Path) -> str:
    """A PATH where every command is found except those starting with PREFIXES."""
    bin_dir = directory / "bin"
    bin_dir.mkdir()
    for folder in os.environ["PATH"].split(":") + ["/usr/sbin", "/sbin"]:
        for command in Path(folder).glob("*") if Path(folder).is_dir() else []:
            target = bin_dir / command.name
            if not command.name.startswith(prefixes) and not target.exists() and os.access(command, os.X_OK):
                target.symlink_to(command)
    return str(bin_dir)
