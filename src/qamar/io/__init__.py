"""File formats qamar reads and writes (CCSDS OEM, ...), and atomic writing.

Every writer goes through :func:`atomic_write`: the text lands in a temporary file beside the
target and is renamed over it only when complete, so an error never leaves a partial file
that looks valid.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_write(path: str | Path, binary: bool = False) -> Iterator[IO]:
    """Open ``path`` for writing so that it appears only when complete.

    Text mode (UTF-8, '\\n' line ends) unless ``binary``. The content goes to a hidden
    temporary file in the same folder, which is flushed, synced and renamed over ``path`` when
    the ``with`` block ends normally, and deleted if it raises. The parent folder must exist
    (OSError otherwise).
    """
    path = Path(path)
    fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        mode = {"mode": "wb"} if binary else {"mode": "w", "encoding": "utf-8", "newline": "\n"}
        with os.fdopen(fd, **mode) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(partial, 0o644)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
