"""The inventory file itself: a regular file of at most MAX_BYTES, read once."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from mesh_push.core.problems import InventoryError, Problem

MAX_BYTES = 8 * 1024 * 1024  # an inventory of 10,000 hosts is about 1 MiB


FILE_KINDS = (
    (stat.S_ISDIR, "is a directory, not a file"),
    (stat.S_ISFIFO, "is a FIFO (named pipe), not a regular file"),
    (stat.S_ISCHR, "is a character device, not a regular file"),
    (stat.S_ISBLK, "is a block device, not a regular file"),
    (stat.S_ISSOCK, "is a socket, not a regular file"),
)


def read_text(file: Path) -> str:
    """The inventory's text: a regular file of at most MAX_BYTES, refused before parsing
    otherwise. Never blocks (a FIFO is refused, not read) and never reads more than
    MAX_BYTES + 1 bytes, whatever the file claims its size is."""

    def fail(why: str) -> InventoryError:
        return InventoryError([Problem(file, (), None, why)])

    def kind_problem(mode: int) -> str | None:
        for test, why in FILE_KINDS:
            if test(mode):
                return why
        return None if stat.S_ISREG(mode) else "is not a regular file"

    too_big = (
        f"is more than {MAX_BYTES // (1024 * 1024)} MiB ({MAX_BYTES} bytes), the most an "
        "inventory may be"
    )
    try:
        # stat first: opening a FIFO or a device can block or act on it.
        if why := kind_problem(os.stat(file).st_mode):
            raise fail(why)
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise fail("no such file") from None
    except OSError as e:
        raise fail(f"cannot read: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)  # what was opened, should it have changed since the stat
        if why := kind_problem(st.st_mode):
            raise fail(why)
        if st.st_size > MAX_BYTES:
            raise fail(f"{too_big}: it has {st.st_size} bytes")
        with os.fdopen(fd, "rb") as f:
            fd = -1
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise fail(f"cannot read: {e.strerror or e}") from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > MAX_BYTES:
        raise fail(too_big)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise fail(f"not a YAML text file (not UTF-8 at byte {e.start})") from None
