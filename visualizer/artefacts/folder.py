"""Write a folder the tool owns without ever losing a file it did not write.

- The target path is resolved (symbolic links, `..`) before any check; a symbolic link, the current
  folder or one of its ancestors, and anything inside or around a protected folder (the trace
  store) are refused.
- An existing target is replaced only when it is empty or provably ours: it holds the owner file
  (`.visualizer-folder.json`, written last, naming the tool, the kind of folder and every file in
  it) and nothing else, or (folders written before the owner file existed) every file in it has a
  name this tool writes and its marker file says this tool wrote it.
- The new folder is built in `.NAME.tmp-PID-*` beside the target and swapped in under a lock on
  the parent folder: target -> `.NAME.old-PID-*`, temporary -> target, old removed. A run killed
  at any point leaves something the next run finishes: it restores an orphaned old folder and
  removes temporary folders of dead processes, under the same lock.

What this module does not do: decide what goes in the folder (pipeline.py, site/).
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import json
import os
import shutil
import signal
import tempfile
import uuid
from pathlib import Path

from visualizer import __version__
from visualizer.artefacts import layout
from visualizer.errors import VisualizerError

KILL_AT_VARIABLE = "VISUALIZER_KILL_AT"  # tests: the process kills itself at this named step


def kill_point(step: str) -> None:
    """Test hook: SIGKILL this process at `step` when $VISUALIZER_KILL_AT names it."""
    if os.environ.get(KILL_AT_VARIABLE) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def resolve_out(target: Path | str, flag: str = "--out") -> Path:
    """The absolute, resolved target; refuses a symbolic link and the current folder or its ancestors."""
    raw = Path(target)
    if raw.is_symlink():
        raise VisualizerError(f"{flag} {target}: is a symbolic link; give the folder itself")
    final = raw.expanduser().resolve()
    cwd = Path.cwd().resolve()
    if final == cwd or final in cwd.parents:
        raise VisualizerError(f"{flag} {target}: is the current folder or contains it; choose a new folder")
    if final == Path(final.anchor) or final == Path.home().resolve():
        raise VisualizerError(f"{flag} {target}: is the file system root or the home folder; choose a new folder")
    return final


def check_protected(final: Path, protected: list[Path], flag: str, target) -> None:
    for folder in protected:
        folder = Path(folder).expanduser().resolve()
        if final == folder or folder in final.parents:
            raise VisualizerError(f"{flag} {target}: is inside the trace store {folder}; choose a folder outside it")
        if final in folder.parents:
            raise VisualizerError(f"{flag} {target}: contains the trace store {folder}; choose another folder")


def files_in(folder: Path) -> list[str]:
    """Every file and symbolic link below folder, as sorted relative POSIX paths."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        base = Path(dirpath)
        found += [(base / name).relative_to(folder).as_posix() for name in filenames]
        found += [(base / d).relative_to(folder).as_posix() for d in dirnames if (base / d).is_symlink()]
    return sorted(found)


def owner_record(folder: Path) -> dict | None:
    path = folder / layout.OWNER_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    ok = isinstance(record, dict) and record.get("tool") == "visualizer" and isinstance(record.get("files"), list)
    return record if ok else None


def legacy_ours(folder: Path, kind: str, present: list[str]) -> bool:
    """A folder from before the owner file: every file has one of our names and the marker says we wrote it."""
    patterns = layout.KIND_FILES[kind]
    if not all(any(fnmatch.fnmatchcase(name, p) for p in patterns) for name in present):
        return False
    try:
        marker = json.loads((folder / layout.KIND_MARKERS[kind]).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(marker, dict) and str(marker.get("tool", "")).startswith("visualizer")


def check_target(target: Path | str, kind: str = "report", protected: list[Path] = (), flag: str = "--out") -> Path:
    """The resolved target, when a run may write it: absent, empty, or a `kind` folder of ours."""
    final = resolve_out(target, flag)
    check_protected(final, list(protected), flag, target)
    if not final.exists():
        if final.parent.exists() and not final.parent.is_dir():
            raise VisualizerError(f"{flag} {target}: cannot write there ({final.parent} is not a folder)")
        return final
    if not final.is_dir():
        raise VisualizerError(f"{flag} {target}: exists and is not a folder")
    present = [name for name in files_in(final) if name != layout.OWNER_FILE]
    if not present and not (final / layout.OWNER_FILE).exists():
        return final
    record = owner_record(final)
    if record is None:
        if legacy_ours(final, kind, present):
            return final
        raise VisualizerError(f"{flag} {target}: folder is not empty and holds no earlier {kind} (visualizer did not "
                              f"write it: it holds {present[0] if present else layout.OWNER_FILE!r}); choose another")
    if record.get("kind") != kind:
        raise VisualizerError(f"{flag} {target}: folder is not empty and holds a visualizer {record.get('kind')}, "
                              f"not a {kind}; choose another")
    listed = set(record["files"])
    foreign = [name for name in present if name not in listed]
    if foreign:
        raise VisualizerError(f"{flag} {target}: holds {foreign[0]!r}, which visualizer did not write there; "
                              "move it away or choose another folder")
    return final


@contextlib.contextmanager
def locked(folder: Path):
    """An exclusive lock on a folder (flock on the folder itself: no lock file is left behind)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def leftover_pid(name: str, prefix: str) -> int | None:
    """The writer's pid in '.NAME.tmp-PID-xxx' / '.NAME.old-PID-xxx', or None when not ours."""
    if not name.startswith(prefix):
        return None
    pid = name[len(prefix):].split("-", 1)[0]
    return int(pid) if pid.isdigit() else None


def recover(final: Path) -> None:
    """Finish what a killed run left beside `final` (call under the parent's lock): an old folder
    whose replacement never arrived goes back into place; dead runs' temporary folders go."""
    parent, name = final.parent, final.name
    for entry in sorted(parent.iterdir()):
        for kind in ("old", "tmp"):
            pid = leftover_pid(entry.name, f".{name}.{kind}-")
            if pid is None or (kind == "tmp" and process_alive(pid)):
                continue
            if kind == "old" and not final.exists() and entry.is_dir():
                os.rename(entry, final)
            else:
                shutil.rmtree(entry, ignore_errors=True)


def write_owner_file(folder: Path, kind: str) -> None:
    files = [name for name in files_in(folder) if name != layout.OWNER_FILE]
    record = {"tool": "visualizer", "version": __version__, "kind": kind, "files": files}
    (folder / layout.OWNER_FILE).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def make_public(folder: Path) -> None:
    """mkdtemp/mkstemp make private files; a site is public."""
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)


@contextlib.contextmanager
def atomic_folder(target: Path | str, kind: str = "report", protected: list[Path] = (), flag: str = "--out"):
    """Yield a temporary folder; on success it becomes `target` in one rename (see the module doc)."""
    final = check_target(target, kind, protected, flag)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        with locked(final.parent):
            recover(final)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{os.getpid()}-", dir=final.parent))
    except OSError as e:
        raise VisualizerError(f"{flag} {target}: cannot write there ({e.strerror or e})") from None
    try:
        yield tmp
        write_owner_file(tmp, kind)
        make_public(tmp)
        kill_point("before-swap")
        with locked(final.parent):
            recover(final)
            check_target(target, kind, protected, flag)  # again: another run may have written meanwhile
            old = None
            if final.exists():
                old = final.parent / f".{final.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                os.rename(final, old)
            kill_point("between-renames")
            os.rename(tmp, final)
            kill_point("after-swap")
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text_atomically(path: Path, text: str) -> None:
    write_bytes_atomically(path, text.encode("utf-8"))

def site_record(root: Path) -> list[str]:
    try:
        record = json.loads((root / layout.SITE_OWNER_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return []
    ok = isinstance(record, dict) and record.get("tool") == "visualizer" and isinstance(record.get("files"), list)
    return [str(name) for name in record["files"]] if ok else []


def legacy_site_index(path: Path) -> bool:
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:2000]
    except OSError:
        return False
    return '<meta name="generator" content="visualizer' in head


def check_site_root(root: Path | str, files: list[str], flag: str = "--out") -> Path:
    """The resolved site root, when writing `files` there replaces only files the tool wrote."""
    final = resolve_out(root, flag)
    if final.exists() and not final.is_dir():
        raise VisualizerError(f"{flag} {root}: exists and is not a folder")
    ours = set(site_record(final))
    for name in files:
        path = final / name
        if not (path.exists() or path.is_symlink()) or name in ours:
            continue
        if path.is_symlink() or not path.is_file():
            raise VisualizerError(f"{flag} {root}: {name} is not a file visualizer wrote; move it away or choose another folder")
        if name == "index.html" and legacy_site_index(path):
            continue
        if name == ".nojekyll" and path.stat().st_size == 0:
            continue
        if name.startswith("assets/") and legacy_site_index(final / "index.html"):
            continue
        raise VisualizerError(f"{flag} {root}: holds {name!r}, which visualizer did not write there; "
                              "move it away or choose another folder")
    return final


def update_site_root(root: Path | str, files: dict[str, bytes], flag: str = "--out") -> Path:
    """Write `files` (relative path -> bytes) at a site root, each atomically, under the root's lock,
    replacing only files the tool wrote; records them in the site owner file."""
    final = check_site_root(root, list(files), flag)
    try:
        final.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VisualizerError(f"{flag} {root}: cannot write there ({e.strerror or e})") from None
    with locked(final):
        check_site_root(root, list(files), flag)
        for name, data in sorted(files.items()):
            path = final / name
            path.parent.mkdir(parents=True, exist_ok=True)
            write_bytes_atomically(path, data)
        listed = sorted(set(site_record(final)) | set(files))
        record = {"tool": "visualizer", "version": __version__, "files": listed}
        write_bytes_atomically(final / layout.SITE_OWNER_FILE, (json.dumps(record, indent=1, sort_keys=True) + "\n").encode())
    return final


def write_bytes_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
