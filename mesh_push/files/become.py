"""Where the sudo password comes from, when a host's sudo asks for one: asked once on the
terminal, or read from a file or the environment. Never from a command-line argument, which
`ps` would show."""

from __future__ import annotations

import getpass
import os
from pathlib import Path

PASSWORD_FILE_ENV = "MESH_PUSH_BECOME_PASSWORD_FILE"
PASSWORD_ENV = "MESH_PUSH_BECOME_PASSWORD"
MAX_BYTES = 4096


class BecomePasswordError(Exception):
    """The password could not be had; the message says why."""


def password(ask: bool) -> str | None:
    """--ask-become-pass first, then the file named by MESH_PUSH_BECOME_PASSWORD_FILE, then
    MESH_PUSH_BECOME_PASSWORD; None when none is given (sudo must then need no password)."""
    if ask:
        try:
            return _one_line(getpass.getpass("sudo password on the hosts: "), "the prompt")
        except EOFError:
            raise BecomePasswordError("--ask-become-pass: no terminal to ask on") from None
    path = os.environ.get(PASSWORD_FILE_ENV)
    if path:
        try:
            with Path(path).open("rb") as f:
                data = f.read(MAX_BYTES + 1)
        except OSError as e:
            raise BecomePasswordError(f"{PASSWORD_FILE_ENV}: {path}: {e.strerror}") from None
        if len(data) > MAX_BYTES:
            raise BecomePasswordError(f"{PASSWORD_FILE_ENV}: {path}: larger than a password")
        text = data.decode(errors="replace")
        return _one_line(text.removesuffix("\n").removesuffix("\r"), path)
    # Taken out of the environment: no child (`dot`, `ssh-keygen`) inherits it.
    value = os.environ.pop(PASSWORD_ENV, None)
    return _one_line(value, PASSWORD_ENV) if value else None


def _one_line(value: str, where: str) -> str:
    # sudo -S reads one line: a newline inside would be taken as the end of the password.
    if "\n" in value or "\r" in value or "\0" in value:
        raise BecomePasswordError(f"the sudo password from {where} has more than one line")
    return value
