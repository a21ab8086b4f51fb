"""The one helper every path tuneline reads, writes, moves or deletes goes through.

`under(root, *parts)` joins validated single components and refuses a result that resolves (symlinks
followed) outside `root`. `remove_tree` deletes only inside its root and never follows a link: a symlink
is removed as a link, its target left alone.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tuneline.names import InvalidName, file_name


class PathEscapesRoot(ValueError):
    """A path that would leave the root it belongs to."""


def under(root: str | Path, *parts: str) -> Path:
    """`root/part/part/...` where every part is one valid file name component and the resolved path stays
    inside the resolved root. Parts may hold '/' only as a separator of valid components."""
    base = Path(root).resolve()
    path = base
    for part in parts:
        for component in str(part).split("/"):
            try:
                path = path / file_name(component)
            except InvalidName as err:
                raise PathEscapesRoot(f"{component!r} under {base}: {err}") from None
    if not path.resolve().is_relative_to(base):
        raise PathEscapesRoot(f"{path} resolves outside {base}")
    return path


def relative_under(root: str | Path, path: str | Path) -> Path:
    """A path recorded earlier (absolute, or relative to `root`) checked to lie under `root`."""
    base = Path(root).resolve()
    candidate = Path(path) if Path(path).is_absolute() else base / path
    resolved = candidate.resolve()
    if not resolved.is_relative_to(base):
        raise PathEscapesRoot(f"{path} resolves outside {base}")
    return resolved


def remove_tree(root: str | Path, path: str | Path) -> bool:
    """Delete `path` (a file, a link or a directory tree) if it lies inside `root`; never the root itself,
    never a link's target. Returns whether something was removed."""
    base = Path(root).resolve()
    path = Path(path)
    parent = path.parent.resolve()
    if not parent.is_relative_to(base) or path.name in ("", ".", ".."):
        raise PathEscapesRoot(f"refusing to delete {path}: not inside {base}")
    target = parent / path.name
    if target == base:
        raise PathEscapesRoot(f"refusing to delete the root {base}")
    try:
        mode = os.lstat(target).st_mode
    except FileNotFoundError:
        return False
    import stat

    if stat.S_ISDIR(mode):
        shutil.rmtree(target)  # rmtree does not follow symlinks inside the tree
    else:
        target.unlink()
    return True
