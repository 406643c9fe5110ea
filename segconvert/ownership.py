"""A run owns its output folder: a lock while it runs, a manifest of what segconvert wrote there.

- **Lock** (``OUT/.segconvert-lock``, created exclusively): a second run into the folder is
  refused, naming the holder's pid and host. A lock whose process is gone (same host) is taken over.
- **Manifest** (``OUT/.segconvert-manifest``): the files that were in the folder before
  segconvert first wrote there (``foreign``: never replaced, never removed), and, once a run is
  complete, every file it wrote (``files``). ``--overwrite`` removes only files the manifest says
  are segconvert's own. ``complete`` is set last, after every report is final.
- **Containment**: an output that is the source, contains it or lies inside a source folder is
  refused before anything is written.

Works the same on a local folder and on an fsspec URL (``s3://bucket/out``).
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segconvert.errors import OutputError
from segconvert.storage import (
    TEMPORARY_PREFIX,
    TEMPORARY_SUFFIX,
    OutputGuard,
    atomic_open,
    inside,
    is_remote,
    iter_files,
    list_files,
    make_folder,
    open_input,
    remove,
)

LOCK_NAME = ".segconvert-lock"
MANIFEST_NAME = ".segconvert-manifest"
MANIFEST_VERSION = 1
STATE_PREFIXES = (".segconvert-journal", LOCK_NAME, MANIFEST_NAME)
"""Names of segconvert's own state files (journal, lock, manifest): owned by the run, never
listed as output files."""


def is_state_file(relative: str) -> bool:
    """Whether ``relative`` (a name inside the output) is segconvert's own state or temporary."""
    name = relative.rsplit("/", 1)[-1]
    if name.startswith(TEMPORARY_PREFIX) and name.endswith(TEMPORARY_SUFFIX):
        return True
    return relative.startswith(STATE_PREFIXES)


# ---------------------------------------------------------------- containment


def check_containment(output: Path, source: Path | None) -> None:
    """Refuse an ``output`` that is the source, contains it, or lies inside a source folder
    (the next run would read its own output back as input). ``None`` or a source that does
    not exist (samples built in memory): nothing to check."""
    if source is None or is_remote(output) != is_remote(source) or not source.exists():
        return
    source_is_dir = source.is_dir()
    source_folder = source if source_is_dir else source.parent
    if _same(output, source_folder):
        raise OutputError(f"output {output} is the source folder; choose another")
    if inside(source, output):
        raise OutputError(f"output {output} contains the source {source}; choose another folder")
    if source_is_dir and inside(output, source_folder):
        raise OutputError(
            f"output {output} lies inside the source folder {source_folder}; choose another"
        )


def _same(a: Path, b: Path) -> bool:
    return inside(a, b) and inside(b, a)


# ---------------------------------------------------------------- lock


@dataclass
class RunLock:
    """The lock of one run on one output folder; :meth:`release` it when the run ends."""

    path: Path
    token: str

    @classmethod
    def acquire(cls, output: Path) -> RunLock:
        """Take the lock on ``output`` or raise :class:`OutputError` naming its holder."""
        path = output / LOCK_NAME
        token = uuid.uuid4().hex
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "token": token,
        }
        data = (json.dumps(record) + "\n").encode("utf-8")
        for _attempt in range(2):
            if _create_exclusive(path, data):
                return cls(path, token)
            holder = _read_lock(path)
            if holder is None or not _holder_alive(holder):
                remove(path)  # the run that held it is gone
                continue
            raise OutputError(
                f"output {output} is in use by another segconvert run (pid {holder.get('pid')} "
                f"on {holder.get('host')}, since {holder.get('started')}); wait for it to end, "
                f"or remove {path} if that run is gone"
            )
        raise OutputError(f"cannot take the lock {path}: another run keeps taking it")

    def release(self) -> None:
        """Remove the lock if it is still ours."""
        holder = _read_lock(self.path)
        if holder is not None and holder.get("token") == self.token:
            remove(self.path)


def _create_exclusive(path: Path, data: bytes) -> bool:
    """Create ``path`` with ``data`` unless it exists (atomically where the store allows)."""
    if is_remote(path):
        fs, fs_path = path.fs, path.path  # type: ignore[attr-defined]
        if fs.exists(fs_path):
            return False
        try:
            fs.pipe_file(fs_path, data, mode="create")  # a conditional PUT where supported
        except FileExistsError:
            return False
        except TypeError:
            fs.pipe_file(fs_path, data)
        except Exception as exc:  # S3 answers 412 Precondition Failed to a lost race
            if "412" in str(exc) or "Precondition" in str(exc):
                return False
            raise OutputError(f"cannot write the lock {path}: {exc}") from None
        return True
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        return False
    except OSError as exc:
        from segconvert.storage import describe_os_error

        raise OutputError(describe_os_error(exc)) from None
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return True


def _read_lock(path: Path) -> dict[str, Any] | None:
    try:
        with open_input(path) as handle:
            record = json.loads(handle.read(65536))
    except Exception:
        return None
    return record if isinstance(record, dict) else None


def _holder_alive(holder: dict[str, Any]) -> bool:
    """Whether the process named by a lock may still run (another host's: assume it does)."""
    if holder.get("host") != socket.gethostname():
        return True
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------- manifest


@dataclass
class Manifest:
    """What segconvert knows about an output folder it wrote into."""

    foreign: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    complete: bool = False

    def to_json(self) -> dict[str, Any]:
        """The manifest's JSON document."""
        return {
            "segconvert_manifest": MANIFEST_VERSION,
            "complete": self.complete,
            "foreign": sorted(self.foreign),
            "files": sorted(self.files),
        }


def read_manifest(output: Path) -> Manifest | None:
    """The manifest in ``output``, None when there is none; a malformed one is an error."""
    path = output / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        with open_input(path) as handle:
            document = json.load(handle)
        if document.get("segconvert_manifest") != MANIFEST_VERSION:
            raise ValueError("unknown version")
        return Manifest(
            foreign=[str(n) for n in document["foreign"]],
            files=[str(n) for n in document["files"]],
            complete=bool(document["complete"]),
        )
    except Exception as exc:
        raise OutputError(
            f"{path} is not a segconvert manifest ({type(exc).__name__}: {exc}); remove it "
            "if segconvert wrote everything in this folder"
        ) from None


def write_manifest(output: Path, manifest: Manifest) -> None:
    """Write ``manifest`` into ``output`` atomically."""
    _write_manifest(output, manifest.foreign, sorted(manifest.files), complete=manifest.complete)


def write_complete_manifest(output: Path, foreign: Iterable[str], files: Iterable[str]) -> None:
    """Write the manifest of a completed run, ``files`` streamed in as they are listed (in
    name order; never held as a list): the same bytes as :func:`write_manifest` of
    ``Manifest(foreign, files, complete=True)``."""
    _write_manifest(output, foreign, files, complete=True)


def _write_manifest(
    output: Path, foreign: Iterable[str], files: Iterable[str], *, complete: bool
) -> None:
    """The one manifest writer: ``json.dumps(Manifest.to_json(), indent=1)``'s bytes, the
    ``files`` (already in name order) streamed in."""
    with atomic_open(output / MANIFEST_NAME, checked=False) as handle:
        handle.write(f'{{\n "segconvert_manifest": {MANIFEST_VERSION},\n')
        handle.write(f' "complete": {json.dumps(complete)},\n "foreign": ')
        handle.writelines(_json_list(sorted(foreign)))
        handle.write(',\n "files": ')
        handle.writelines(_json_list(files))
        handle.write("\n}\n")


def _json_list(names: Iterable[str]) -> Iterator[str]:
    """A list of strings as ``json.dumps(..., indent=1)`` writes it one level deep."""
    empty = True
    for name in names:
        yield ("[\n  " if empty else ",\n  ") + json.dumps(name)
        empty = False
    yield "[]" if empty else "\n ]"


def output_files(output: Path) -> dict[str, tuple[int, float]]:
    """The files in ``output`` other than segconvert's state files."""
    return {k: v for k, v in list_files(output).items() if not is_state_file(k)}


# ---------------------------------------------------------------- a run's ownership


@dataclass
class Ownership:
    """One run's hold on its output: the lock, the foreign files, the guard for writers."""

    output: Path
    lock: RunLock
    foreign: frozenset[str]
    replaceable: frozenset[str] = frozenset()

    @property
    def guard(self) -> OutputGuard:
        """What every write of the run is checked against."""
        root = str(self.output) if is_remote(self.output) else os.path.realpath(self.output)
        return OutputGuard(
            root=root,
            foreign=self.foreign,
            remote=is_remote(self.output),
            replaceable=self.replaceable,
        )

    def finish(self, *, complete: bool) -> None:
        """Record what the run wrote; mark it complete (call after every report is final).
        The output is listed as the manifest is written: nothing per file is held."""
        if complete:
            files = (
                name
                for name, _, _ in iter_files(self.output)
                if not is_state_file(name) and name not in self.foreign
            )
            write_complete_manifest(self.output, self.foreign, files)

    def release(self) -> None:
        """Let other runs into the folder."""
        self.lock.release()


def check_output(
    output: Path,
    source: Path | None,
    overwrite: bool,
    resume: bool = False,
    *,
    has_journal: Any = None,
) -> None:
    """Everything about ``output`` that can be refused before anything is written.

    Refuses an output that is the source, contains it or lies inside it; a dangling symlink;
    something that is not a folder; a non-empty folder unless ``overwrite`` (or ``resume``
    with a journal, as ``has_journal(output)`` says).
    """
    check_containment(output, source)
    if not is_remote(output) and output.is_symlink() and not output.exists():
        raise OutputError(f"output {output} is a dangling symlink")
    if not is_remote(output) and output.exists() and not output.is_dir():
        raise OutputError(f"output {output} exists and is not a folder")
    if not is_remote(output) and not output.exists():
        for parent in output.parents:
            if parent.exists() or parent.is_symlink():
                if not parent.is_dir():
                    raise OutputError(f"output {output} lies below {parent}, which is no folder")
                break
        return
    foreign, ours = _classify(output)
    resumable = resume and has_journal is not None and has_journal(output)
    if (foreign or ours) and not overwrite and not resumable:
        hint = " (and has no interrupted conversion to resume)" if resume else ""
        raise OutputError(
            f"output folder {output} is not empty{hint}; pass --overwrite to write into it "
            "(only files segconvert wrote there are replaced)"
        )


def take_ownership(
    output: Path,
    source: Path,
    *,
    overwrite: bool,
    resume: bool,
    has_journal: Any,
) -> Ownership:
    """Lock ``output`` for a run from ``source``, after the checks of :func:`check_output`
    (made again under the lock). With ``overwrite`` the files an earlier segconvert run
    wrote are removed (never the others). ``has_journal(output)`` says whether a resumable
    journal is there.
    """
    check_output(output, source, overwrite, resume, has_journal=has_journal)
    make_folder(output)
    lock = RunLock.acquire(output)
    try:
        check_output(output, source, overwrite, resume, has_journal=has_journal)
        foreign, ours = _classify(output)
        resumable = resume and has_journal(output)
        if overwrite and not resumable:
            _remove(output, ours)
        remove_temporaries(output)
        write_manifest(output, Manifest(sorted(foreign), [], complete=False))
    except BaseException:
        lock.release()
        raise
    return Ownership(output, lock, frozenset(foreign), frozenset(ours if resumable else ()))


def _classify(output: Path) -> tuple[set[str], set[str]]:
    """The files in ``output``: (not written by segconvert, written by segconvert)."""
    listing = set(output_files(output))
    manifest = read_manifest(output)
    if manifest is None:
        return listing, set()
    # after an interrupted run, everything but what was there before it is its own
    ours = (
        (listing & set(manifest.files)) if manifest.complete else (listing - set(manifest.foreign))
    )
    return listing - ours, ours


def _remove(output: Path, names: Iterable[str]) -> None:
    for name in sorted(names):
        remove(output / name)
    for name in list_files(output):
        if is_state_file(name) and name.startswith(".segconvert-journal"):
            remove(output / name)


def remove_temporaries(output: Path) -> None:
    """Delete temporary files a killed run left behind (only names segconvert makes)."""
    if is_remote(output):
        return  # remote writes spool locally: nothing partial is ever stored
    for name, _, _ in iter_files(output):
        base = name.rsplit("/", 1)[-1]
        if base.startswith(TEMPORARY_PREFIX) and base.endswith(TEMPORARY_SUFFIX):
            remove(output / name)
