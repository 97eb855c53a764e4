"""Atomic file writes: a temporary file in the same directory, fsync, then ``os.replace``.

A reader (or a resumed run after ``kill -9``) sees either the old file or the new one,
never half of one.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any, Callable, IO

__all__ = ["write_atomic", "write_text_atomic", "write_json_atomic", "torch_save_atomic"]



def write_atomic(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(fileobj)`` on a temporary file, then move it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for open()
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_atomic(path, lambda fh: fh.write(text.encode("utf-8")))


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON atomically (NaN is refused: JSON has none)."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")


def torch_save_atomic(path: str | os.PathLike, obj: Any) -> None:
    """``torch.save`` atomically; load it back with ``torch.load(path, weights_only=True)``."""
    import torch

    write_atomic(path, lambda fh: torch.save(obj, fh))
