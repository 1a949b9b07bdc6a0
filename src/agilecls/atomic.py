"""Crash-safe writes: a file or a whole folder appears complete or not at all, and a folder being
replaced is never lost, even if the process is killed (SIGKILL, power loss) halfway.

Replacing a folder takes two renames (old away, new in); between them the target does not exist.
So the new folder is first renamed to a ``.NAME.new-*`` sibling, which marks it complete, and the
old one to ``.NAME.old-*``. :func:`recover_folder`, run at the start of every save and load, puts
a version back at NAME when a crash left it missing (the complete new one if there is one, else the
old one) and removes leftovers: a save killed before the old folder moved leaves the old model, one
killed after leaves the new. An advisory lock on the containing folder keeps a recovery from
touching a save still in progress in another process; the kernel releases it when a process dies.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; saves still never leave half a folder
    fcntl = None

#: Test hook: ``AGILECLS_PAUSE_AT=<step>`` makes a save stop at that step (writing the step name to
#: ``$AGILECLS_PAUSE_FILE``) so a test can kill the process exactly there.
PAUSE_STEPS = ("written", "new-marked", "old-moved", "new-moved")


def _pause(step: str) -> None:
    if os.environ.get("AGILECLS_PAUSE_AT") == step:
        Path(os.environ["AGILECLS_PAUSE_FILE"]).write_text(step)
        time.sleep(3600)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path``, flush it to disk and rename it into place,
    so a crash never leaves half a file (and an old file stays whole until the new one is)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def folder_lock(path: Path) -> Iterator[bool]:
    """Hold an advisory lock on the folder that contains ``path`` (so no lock file is left behind);
    yields False when the folder cannot be opened or locked."""
    if fcntl is None:
        yield True
        return
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _leftovers(path: Path, kind: str) -> list[Path]:
    return sorted(path.parent.glob(f".{path.name}.{kind}-*"), key=lambda p: p.stat().st_mtime)


def _recover_locked(path: Path) -> None:
    news, olds, tmps = (_leftovers(path, kind) for kind in ("new", "old", "tmp"))
    if not path.exists():
        if news:  # the new version was complete: finish the swap
            news.pop().rename(path)
        elif olds:  # killed before the new one was complete: put the old one back
            olds.pop().rename(path)
    for leftover in news + olds + tmps:
        shutil.rmtree(leftover, ignore_errors=True)


def recover_folder(path: str | os.PathLike) -> None:
    """After a crash in :func:`atomic_folder`: put the newest complete version back at ``path`` and
    remove leftover temporary folders. Cheap when there is nothing to do."""
    path = Path(path)
    if not path.parent.is_dir() or (path.exists() and not any(path.parent.glob(f".{path.name}.*-*"))):
        return
    with folder_lock(path) as locked:
        if locked:
            _recover_locked(path)


def atomic_folder(path: str | os.PathLike, write: Callable[[Path], None],
                  may_replace: Callable[[Path], bool] = lambda p: True) -> Path:
    """Call ``write(tmp_folder)``, then swap the folder in at ``path``; the old one (which
    ``may_replace`` must accept) is removed only after. Killed at any point, the next save or
    :func:`recover_folder` finds the old or the new version at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with folder_lock(path):
        _recover_locked(path)
        if path.exists() and (not path.is_dir() or (any(path.iterdir()) and not may_replace(path))):
            raise FileExistsError(f"{path} exists and is not a saved classifier; choose another folder")
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
        try:
            write(tmp)
            _pause("written")
            new = tmp.with_name(tmp.name.replace(".tmp-", ".new-"))
            tmp.rename(new)  # complete: from here a crash ends with the new version in place
            _pause("new-marked")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        try:
            if path.exists():
                path.rename(new.with_name(new.name.replace(".new-", ".old-")))
                _pause("old-moved")
            new.rename(path)
            _pause("new-moved")
        finally:
            _recover_locked(path)  # the new version in place (whatever failed), leftovers removed
    return path
