"""Files the bot makes for itself: folders 0700, files 0600, so other local users read no memory or logs.

Modes are given where each file is made, not through the process umask: the bot may run as a
plugin inside another nonebot project, whose own files a changed umask would silently change too.
A folder or file that already exists keeps the mode its owner gave it. SQLite makes its -wal and
-shm files with the mode of the database file, so creating that file 0600 covers all three.
"""

from __future__ import annotations

import os
from pathlib import Path

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Make `path` and its missing parents, each 0700; folders that exist are left as they are."""
    missing: list[Path] = []
    here = path
    while not here.exists() and here.parent != here:
        missing.append(here)
        here = here.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=FOLDER_MODE)
        except FileExistsError:  # made by another process meanwhile: theirs
            continue
        os.chmod(folder, FOLDER_MODE)  # mkdir's mode passes through the umask
    return path


def private_file(path: Path) -> Path:
    """Make `path` empty and 0600 where it does not exist yet (its folder too, 0700)."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
    except FileExistsError:
        return path
    os.fchmod(fd, FILE_MODE)
    os.close(fd)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Replace `path` atomically with `data`, as a 0600 file."""
    private_dir(path.parent)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), FILE_MODE)  # a leftover .tmp keeps its old mode through O_CREAT
            out.write(data)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
