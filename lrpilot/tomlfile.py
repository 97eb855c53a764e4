"""Reading the project's TOML files (study files, training recipes) with one-line errors."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

__all__ = ["read_toml"]


def read_toml(path: str | Path, kind: str) -> dict[str, Any]:
    """The table of a TOML file; ``kind`` names it in errors (``"study file"``, ``"recipe file"``).

    ``FileNotFoundError`` when it does not exist, another ``OSError`` when it cannot be read,
    ``ValueError`` naming the file (and, for a syntax error, the line and column) otherwise.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{kind} {path} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: is a directory, not a {kind}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 text file") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ValueError(f"{path}: invalid TOML: arrays or tables nested too deeply") from None
