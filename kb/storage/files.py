"""Writing files that readers in other processes may open at any moment."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write a file through a temporary file and a rename, so readers see the old file or the new one, whole.

    The temporary file is opened by `open` (exclusive creation), so it gets the mode the umask
    gives any new file, where mkstemp's 0600 would hide it from the node's other users.
    """
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
