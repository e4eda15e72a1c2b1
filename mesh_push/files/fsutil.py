"""Local files that may hold secrets: 0600 files in 0700 directories, written atomically, and
never through a symbolic link.

Directories mesh-push makes are made 0700. A directory that already exists is used as it is
(never chmod'ed: `render -o /tmp` must not make /tmp 0700), but only when it is safe to keep
secrets in: a real directory, not a symbolic link to one, owned by the user running mesh-push
(or root), and writable by nobody else. Inside it, every file is written to a new temporary
file (O_CREAT|O_EXCL|O_NOFOLLOW) and renamed over its name, through a descriptor of the
checked directory: a symbolic link planted at a file's name is replaced, never followed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path
from types import TracebackType


class LocalFileError(Exception):
    """A file or directory on the controller that mesh-push will not use, or could not write:
    the message says which, why, and what to do. Printed without a traceback, exit 2."""


def _describe_owner(uid: int) -> str:
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _make_dirs(path: Path) -> None:
    """Make `path` and its missing parents, each 0700 (the umask may take more away). An
    existing one is left exactly as it is."""
    missing: list[Path] = []
    p = path
    while not os.path.lexists(p):
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            pass  # made meanwhile by someone else: the checks on `path` decide
        except OSError as e:
            raise LocalFileError(f"cannot make the directory {d}: {e.strerror or e}") from None


class PrivateDir:
    """An open, checked directory for secret files; its descriptor pins it, so what is
    written goes where it was checked even if its path is swapped afterwards."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd

    def __enter__(self) -> PrivateDir:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def exists(self, name: str) -> bool:
        try:
            os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return True

    def write(self, name: str, data: str | bytes, mode: int = 0o600) -> Path:
        _write_at(self.fd, name, data, mode, self.path / name)
        return self.path / name

    def read(self, name: str, secret: bool = True) -> str:
        """A file's text: a regular file (not a symbolic link), owned by us or root, that
        nobody else may write to, nor read when it is `secret`."""
        path = self.path / name
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise LocalFileError(f"{path} is a symbolic link: refusing to follow it") from None
            raise LocalFileError(f"cannot read {path}: {e.strerror or e}") from None
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            mode = stat.S_IMODE(st.st_mode)
            if not stat.S_ISREG(st.st_mode):
                raise LocalFileError(f"{path} is not a regular file")
            if st.st_uid not in (os.geteuid(), 0):
                raise LocalFileError(
                    f"{path} belongs to {_describe_owner(st.st_uid)}, not to you: refusing it"
                )
            if mode & (0o077 if secret else 0o022):
                raise LocalFileError(
                    f"{path} may be {'read or written' if secret else 'written'} by others "
                    f"(mode {mode:04o}): refusing it. If nobody else had it, chmod "
                    f"{'600' if secret else 'go-w'} {path}; else remove it and its pair, and run "
                    "`mesh-push up` to make a new one."
                )
            return f.read().decode(errors="replace")


def open_private_dir(path: Path, create: bool) -> PrivateDir | None:
    """`path` opened as a directory for secrets, after the checks above; with `create` it (and
    its missing parents) is made 0700 first. None when it does not exist and not `create`."""
    if create:
        _make_dirs(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        if create:
            raise LocalFileError(f"{path} vanished while it was being made") from None
        return None
    except OSError as e:
        if os.path.islink(path):
            raise LocalFileError(
                f"{path} is a symbolic link: mesh-push keeps secrets only in a real directory "
                "(name the directory itself)"
            ) from None
        if e.errno == errno.ENOTDIR:
            raise LocalFileError(f"{path} is not a directory") from None
        raise LocalFileError(f"cannot open the directory {path}: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        mode = stat.S_IMODE(st.st_mode)
        if st.st_uid not in (os.geteuid(), 0):
            raise LocalFileError(
                f"{path} belongs to {_describe_owner(st.st_uid)}, not to you: mesh-push keeps "
                "secrets only in a directory of your own (give a new path: it is made 0700)"
            )
        if mode & 0o022:
            raise LocalFileError(
                f"{path} is writable by {'others' if mode & 0o002 else 'its group'} (mode "
                f"{mode:04o}): mesh-push keeps secrets only in a directory nobody else can write "
                "to, and changes no directory it did not make. Give a new path (it is made "
                f"0700), or chmod go-w {path} yourself."
            )
    except BaseException:
        os.close(fd)
        raise
    return PrivateDir(path, fd)


def private_dir(path: Path) -> PrivateDir:
    """`path` as a directory for secrets, made 0700 if missing (see open_private_dir)."""
    opened = open_private_dir(path, create=True)
    assert opened is not None
    return opened


def _write_at(dir_fd: int, name: str, data: str | bytes, mode: int, shown: Path) -> None:
    """Readers see the old file or the new one, never half of it; the temporary file is new
    (O_EXCL, O_NOFOLLOW) and renamed over `name`, which replaces a symbolic link there
    instead of following it. A crash leaves a temp file."""
    raw = data.encode() if isinstance(data, str) else data
    tmp = f".{name}.{secrets.token_hex(6)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
        try:
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as f:
                f.write(raw)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
        with contextlib.suppress(OSError):
            os.fsync(dir_fd)
    except OSError as e:
        raise LocalFileError(f"cannot write {shown}: {e.strerror or e}") from None


def atomic_write(path: Path, data: str | bytes, mode: int = 0o600, make_dir: bool = True) -> None:
    """Write one file atomically (see _write_at) in `path`'s directory, made if missing
    (unless not `make_dir`). For files that are not secret, beside the inventory (the state
    file, the inventory itself): their directory is the user's and is not checked."""
    try:
        if make_dir:
            path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise LocalFileError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        _write_at(fd, path.name, data, mode, path)
    finally:
        os.close(fd)
