"""Every file the host or a plugin touches: local paths and fsspec URLs, read and written safely.

A *location* is a :class:`pathlib.Path` for a local file and a :class:`upath.UPath` (the pathlib
API over fsspec, kept by the fsspec project) for a URL such as ``s3://bucket/out``, ``gs://``,
``az://`` or ``memory://``. Formats use the Path API they know (``/``, ``.name``, ``.glob``,
``.is_file``) and the helpers below, and never learn which filesystem they are on.

Reading: :func:`open_input` opens regular files only (a FIFO or a device is refused without
blocking), and :func:`read_bytes` refuses files larger than the caller's bound before reading.

Writing: :func:`atomic_open` writes to a temporary name next to the final one and renames it into
place (locally), or uploads one complete object when the data is complete (remotely: a local
temporary file then a single put), so a reader never sees a partial file or object. New files get
the permissions the user's umask gives (``0o666 & ~umask``). While a run owns an output folder
(:func:`guard_output`), every write is checked to stay inside it and never to replace a file that
segconvert did not write.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import io
import itertools
import os
import pickle
import re
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, cast

from segconvert.errors import InputError, ItemError, OutputError, UsageError

TEMPORARY_PREFIX = ".segconvert-tmp."
TEMPORARY_SUFFIX = ".tmp"
"""Temporary files are ``.segconvert-tmp.<name>.<random>.tmp`` next to their final name (the
name shortened when the whole would pass the file system's limit); a killed run may leave some,
which the next run into the folder removes."""

NAME_MAX = 255
"""Longest file name (bytes) on the file systems we write to."""

EXTRAS = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "adl": "azure",
}
"""URL scheme -> the segconvert extra that installs its fsspec driver."""

_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
_options_lock = threading.Lock()
_storage_options: dict[str, Any] = {}


# ---------------------------------------------------------------- locations


def url_scheme(target: str | os.PathLike[str]) -> str | None:
    """The scheme of ``target`` when it is a URL (``"s3"``), else None."""
    match = _URL.match(os.fspath(target)) if isinstance(target, str) else None
    return match.group("scheme").lower() if match else None


def configure(storage_options: Mapping[str, Any] | None) -> None:
    """Set the fsspec options (credentials, ``endpoint_url``...) used for every URL location
    made from a plain string from now on, in this process (the pipeline sets them in workers)."""
    with _options_lock:
        _storage_options.clear()
        _storage_options.update(storage_options or {})


def current_options() -> dict[str, Any]:
    """The fsspec options set by :func:`configure`."""
    with _options_lock:
        return dict(_storage_options)


def location(
    target: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None
) -> Path:
    """``target`` as a location: a :class:`~pathlib.Path` for a local path or ``file://`` URL,
    a :class:`upath.UPath` for any other fsspec URL.

    A location already made is returned as it is. Options come from ``storage_options``, else
    from :func:`configure`; fsspec adds what the environment and its config hold
    (``AWS_ENDPOINT_URL``, ``~/.aws``, ``FSSPEC_S3_*``...).

    Raises:
        UsageError: the URL's driver is not installed (the message names the extra to install),
            or the URL is malformed.
    """
    if isinstance(target, Path):
        return target
    if not isinstance(target, str) and is_remote(cast(Path, target)):
        return cast(Path, target)
    text = os.fspath(target)
    if "\x00" in text:
        raise UsageError(f"{text!r}: a NUL character is not allowed in a path")
    scheme = url_scheme(text)
    if scheme is None:
        return Path(text)
    if scheme in ("file", "local"):
        return Path(text.split("://", 1)[1])
    options = dict(storage_options) if storage_options is not None else current_options()
    from upath import UPath

    try:
        path = UPath(text, **options)
        path.fs  # noqa: B018 - instantiating the filesystem imports its driver
    except ImportError as exc:
        extra = EXTRAS.get(scheme)
        hint = f'pip install "segconvert[{extra}]"' if extra else f"install its driver ({exc})"
        raise UsageError(f"{text}: no driver for {scheme}:// URLs is installed; {hint}") from None
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{text}: cannot use this URL ({exc})") from None
    return cast(Path, path)


def is_remote(path: Path) -> bool:
    """Whether ``path`` is on a filesystem other than the local one."""
    return not isinstance(path, Path)


def in_memory(path: Path) -> bool:
    """Whether ``path`` is on fsspec's ``memory://`` filesystem (one process's memory)."""
    return is_remote(path) and getattr(path, "protocol", "") == "memory"


def _fs_path(path: Path) -> tuple[Any, str]:
    """The fsspec filesystem and its own path for a remote location."""
    upath = cast(Any, path)
    return upath.fs, upath.path


def display(path: Path) -> str:
    """How ``path`` is named in messages and reports (URLs keep their scheme)."""
    return str(path)


AZURE_BLOB_SCHEMES = ("az", "abfs", "abfss")
"""fsspec's schemes for Azure Blob Storage (adlfs)."""


def object_url(path: Path) -> str:
    """The URL other programs reach a remote location by (a ``mask_url`` in a Nucleus export).

    ``s3://`` and ``gs://`` URLs are what AWS, Google and Scale's tools take, so they stay as
    they are. Azure Blob is the exception: ``az://container/key`` is fsspec's own naming, which
    nothing outside fsspec knows (the Nucleus SDK takes any scheme but s3, gs, http and https
    for a local file), so its URL is the blob's on the account's blob service,
    ``https://ACCOUNT.blob.core.windows.net/container/key`` (never with a SAS token: grant
    access through the store). A local path: its absolute form.
    """
    if not is_remote(path):
        return str(Path(path).resolve())
    upath = cast(Any, path)
    if upath.protocol in AZURE_BLOB_SCHEMES:
        client = upath.fs.service_client
        return f"{client.scheme}://{client.primary_hostname}/{upath.path.lstrip('/')}"
    return str(path)


def parse_storage_options(pairs: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["KEY=VALUE", ...]`` from ``--storage-option`` as a mapping; values that read as JSON
    (``true``, ``3``, ``{"a": 1}``) take that type, others stay strings. ``client_kwargs.KEY``
    nests."""
    import json

    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--storage-option {pair!r}: expected KEY=VALUE")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        target = options
        *parents, last = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[last] = value
    return options


# ---------------------------------------------------------------- reading


def open_input(path: Path, *, item: str | None = None, rule: str | None = None) -> IO[bytes]:
    """Open ``path`` for reading in binary mode: regular files only, never blocking.

    A FIFO, socket or device (``/dev/zero``) is refused before anything is read, and a folder
    given where a file is expected is named as such. With ``item`` or ``rule`` the errors are
    an :class:`ItemError` (``rule``, default ``file-missing``, when it cannot be opened;
    ``not-a-file`` when it is no regular file); without, an :class:`InputError` about the input
    as a whole.
    """
    rule = rule or ("file-missing" if item is not None else None)
    if is_remote(path):
        return _open_remote_input(path, item=item, rule=rule)
    name = os.fspath(path)
    try:
        if "\x00" in name:
            raise ValueError("a NUL character is not allowed in a path")
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise _input_error(f"{path}: no such file", item, rule, path) from None
    except IsADirectoryError:
        raise _input_error(
            f"{path}: is a folder, expected a file", item, rule and "not-a-file", path
        ) from None
    except (OSError, ValueError) as exc:
        raise _input_error(f"{path}: cannot open ({_reason(exc)})", item, rule, path) from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise _input_error(
                f"{path}: is a folder, expected a file", item, rule and "not-a-file", path
            )
        if not stat.S_ISREG(mode):
            raise _input_error(
                f"{path}: not a regular file (FIFO, socket or device)",
                item,
                rule and "not-a-file",
                path,
            )
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


REMOTE_BLOCK = 1 << 20
"""Bytes fetched per ranged GET when reading an object (most masks arrive in one request)."""


class _RangeReader(io.RawIOBase):
    """An object read with ranged GETs, the first one made on opening (no HEAD request)."""

    def __init__(self, fs: Any, path: str, first: bytes) -> None:
        super().__init__()
        self._fs, self._path = fs, path
        self._pending = first
        self._position = len(first)
        self._eof = len(first) < REMOTE_BLOCK

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._pending and not self._eof:
            size = max(len(buffer), REMOTE_BLOCK)
            try:
                self._pending = self._fs.cat_file(
                    self._path, start=self._position, end=self._position + size
                )
            except Exception:  # drivers raise their own types
                if not _past_the_end(self._fs, self._path, self._position):
                    raise
                self._pending = b""
            self._position += len(self._pending)
            self._eof = len(self._pending) < size
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


def _past_the_end(fs: Any, fs_path: str, position: int) -> bool:
    """Whether a ranged read from ``position`` failed only because the object ends there.

    Stores differ on a range that starts at the end: S3 and GCS answer 416 Range Not
    Satisfiable, Azure Blob ``InvalidRange`` (an empty blob even from byte 0), GCS's emulator an
    empty body; and each driver raises its own type. So the size decides, not the message.
    """
    try:
        return bool(position >= fs.size(fs_path))
    except Exception:  # drivers raise their own types
        return False


def _open_remote_input(path: Path, *, item: str | None, rule: str | None) -> IO[bytes]:
    fs, fs_path = _fs_path(path)
    try:
        first = fs.cat_file(fs_path, start=0, end=REMOTE_BLOCK)
    except FileNotFoundError:
        if fs.isdir(fs_path):
            raise _input_error(
                f"{path}: is a folder, expected a file", item, rule and "not-a-file", path
            ) from None
        raise _input_error(f"{path}: no such file", item, rule, path) from None
    except Exception as exc:  # drivers raise their own types (botocore, aiohttp, azure)
        if _past_the_end(fs, fs_path, 0):  # an empty object
            return io.BytesIO(b"")
        raise _input_error(f"{path}: cannot open ({_reason(exc)})", item, rule, path) from None
    return io.BufferedReader(_RangeReader(fs, fs_path, first), REMOTE_BLOCK)


class RangeReader:
    """Reads byte ranges of one file (``read(offset, length)``): a local file through one
    handle opened by :func:`open_input` (regular files only), an object on a store by one
    ranged GET per read. Use it as a context manager, or :meth:`close` it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[bytes] | None = None
        self._fs: Any = None
        if is_remote(path):
            self._fs, self._fs_path = _fs_path(path)
        else:
            self._handle = open_input(path)

    def read(self, offset: int, length: int) -> bytes:
        """The ``length`` bytes at ``offset`` (fewer at the end of the file)."""
        if self._handle is not None:
            self._handle.seek(offset)
            return self._handle.read(length)
        try:
            data: bytes = self._fs.cat_file(self._fs_path, start=offset, end=offset + length)
        except FileNotFoundError:
            raise InputError(f"{self.path}: no such file", file=str(self.path)) from None
        except Exception as exc:  # drivers raise their own types (botocore, aiohttp, azure)
            if _past_the_end(self._fs, self._fs_path, offset):
                return b""
            raise InputError(
                f"{self.path}: cannot read ({_reason(exc)})", file=str(self.path)
            ) from None
        return data

    def close(self) -> None:
        """Close the local handle."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> RangeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_bytes(
    path: Path, *, limit: int | None = None, item: str | None = None, rule: str | None = None
) -> bytes:
    """The content of ``path`` (see :func:`open_input`), refused unread when it is larger than
    ``limit`` bytes."""
    rule = rule or ("file-missing" if item is not None else None)
    with open_input(path, item=item, rule=rule) as handle:
        if limit is None:
            return handle.read()
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise _input_error(
            f"{path}: larger than the limit of {limit} bytes", item, rule and "file-too-large", path
        )
    return data


def _input_error(message: str, item: str | None, rule: str | None, path: Path) -> Exception:
    if rule is not None:
        return ItemError(message, rule=rule, item=item, file=str(path))
    return InputError(message, file=str(path))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def describe_os_error(exc: OSError, action: str = "cannot write") -> str:
    """One line for a failed file operation: what, where, and why in words (full disk,
    read-only file system, a regular file where a folder should be...)."""
    where = exc.filename if exc.filename is not None else "output"
    reasons = {
        errno.ENOSPC: "no space left on the device",
        errno.EDQUOT: "disk quota exceeded",
        errno.EROFS: "read-only file system",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.ENOTDIR: "a part of the path is a regular file, not a folder",
        errno.EFBIG: "file too large for the file system or the process's limit",
        errno.ENAMETOOLONG: "file name too long",
        errno.ELOOP: "too many levels of symbolic links",
    }
    reason = reasons.get(exc.errno or 0, _reason(exc))
    return f"{action} {where}: {reason}"


# ---------------------------------------------------------------- output ownership guard


@dataclass(frozen=True)
class OutputGuard:
    """What a run may write: only inside ``root``, and never a file listed in ``foreign``
    (files present in the folder that segconvert did not write). Picklable, set in workers."""

    root: str
    foreign: frozenset[str] = field(default_factory=frozenset)
    remote: bool = False
    replaceable: frozenset[str] = field(default_factory=frozenset)
    """Files an interrupted run of ours left (``--resume``): rewriting them is no clash. Any
    other file that exists when the run writes its name was written by another item of this
    run: two names that normalise to one path (``x/a``, ``x/./a``, ``x//a``)."""

    def relative(self, path: Path) -> str | None:
        """``path`` relative to the root, or None when it lies outside (symlinks followed)."""
        if self.remote or is_remote(path):
            text = _normal(str(path))
            root = _normal(self.root)
            if text == root or text.startswith(root.rstrip("/") + "/"):
                return text[len(root.rstrip("/")) + 1 :]
            return None
        parent = real_folder(os.path.dirname(os.path.abspath(path)))
        target = os.path.join(parent, os.path.basename(path))  # a final symlink is replaced
        if target == self.root or not target.startswith(self.root.rstrip(os.sep) + os.sep):
            return None
        return os.path.relpath(target, self.root).replace(os.sep, "/")

    def check(self, path: Path) -> bool:
        """Refuse a write outside the root or onto a file segconvert does not own; return
        whether the write is exclusive: ``path`` must not exist yet (it is not a file a resumed
        run may rewrite)."""
        relative = self.relative(path)
        if relative is None:
            raise ItemError(
                f"{path} lies outside the output folder {self.root} (symlink?); not written",
                rule="unsafe-path",
                file=str(path),
            )
        if relative in self.foreign:
            raise ItemError(
                f"{path} was not written by segconvert; it is left as it is",
                rule="output-not-owned",
                file=str(path),
            )
        return relative not in self.replaceable


@functools.lru_cache(maxsize=4096)
def real_folder(folder: str) -> str:
    """``os.path.realpath`` of an absolute folder path, remembered for this process.

    Every output file's containment check resolves its folder; a run writes thousands of files
    into a handful of folders, and resolving walks every component with ``lstat``. The answer
    can only change if someone swaps a folder for a symlink while the run writes into it: the
    run itself only ever creates real folders, and the final component of each file is still
    checked on every write.
    """
    return os.path.realpath(folder)


def real_path(path: Path | str) -> str:
    """``os.path.realpath`` of a local path, its folder resolved by :func:`real_folder` and a
    final symlink followed, as ``open`` would."""
    folder, name = os.path.split(os.path.abspath(path))
    resolved = os.path.join(real_folder(folder), name)
    return os.path.realpath(resolved) if os.path.islink(resolved) else resolved


_guard: OutputGuard | None = None


def _normal(text: str) -> str:
    scheme, sep, rest = text.partition("://")
    if not sep:
        return os.path.normpath(text)
    return f"{scheme}://{os.path.normpath('/' + rest).lstrip('/')}"


def guard_output(guard: OutputGuard | None) -> None:
    """Check every write of this process against ``guard`` (None: no checks)."""
    global _guard
    _guard = guard
    real_folder.cache_clear()  # folders are resolved afresh for every run


def current_guard() -> OutputGuard | None:
    """The guard set by :func:`guard_output`."""
    return _guard


# ---------------------------------------------------------------- writing


def file_mode() -> int:
    """Permissions for new files: ``0o666`` less the process's umask (0644 with umask 022)."""
    with _options_lock:
        mask = os.umask(0)
        os.umask(mask)
    return 0o666 & ~mask


def temporary_name(name: str) -> str:
    """A name prefix for the temporary file of ``name``, short enough that prefix, name, the
    random part and the suffix fit in :data:`NAME_MAX` bytes."""
    room = NAME_MAX - len(TEMPORARY_PREFIX) - len(TEMPORARY_SUFFIX) - 1 - 8
    encoded = name.encode("utf-8")
    if len(encoded) > room:
        name = encoded[:room].decode("utf-8", "ignore")
    return f"{TEMPORARY_PREFIX}{name}."


def make_folder(path: Path) -> None:
    """Create ``path`` and its parents (nothing to do on object stores); errors in one line."""
    if is_remote(path):
        return
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        kind = "a dangling symlink" if path.is_symlink() else "a file"
        raise OutputError(f"cannot create folder {path}: {kind} is in the way") from None
    except OSError as exc:
        raise OutputError(describe_os_error(exc, "cannot create folder")) from None


def clash(path: Path) -> ItemError:
    """The error for a second write of one output file within a run."""
    return ItemError(
        f"{path} was already written by another item of this run (names that differ only by "
        "'./', '//' or a folder part the format drops map to one file)",
        rule="duplicate-output-name",
        file=str(path),
    )


@contextmanager
def atomic_open(
    path: Path, mode: str = "w", encoding: str | None = "utf-8", *, checked: bool = True
) -> Iterator[IO[Any]]:
    """Open a temporary file for ``path``; put it in place only when the block succeeds.

    Locally the temporary file lies next to ``path`` and is renamed onto it; remotely it is a
    local temporary file uploaded as one object at the end. While a run owns the output
    (and ``checked``), the write must stay inside it, must not replace a file segconvert did
    not write, and must not replace a file another item of the run wrote
    (``duplicate-output-name``). File system errors (full disk, read-only, a file where a
    folder should be) become one-line :class:`OutputError` s.
    """
    guard = current_guard() if checked else None
    exclusive = guard.check(path) if guard is not None else False
    text = "b" not in mode
    if is_remote(path):
        with _remote_atomic_open(path, mode, encoding if text else None, exclusive) as handle:
            yield handle
        return
    make_folder(path.parent)
    anonymous = _open_anonymous(path)
    if anonymous is not None:
        with _anonymous_atomic_open(
            anonymous, path, mode, encoding if text else None, exclusive
        ) as handle:
            yield handle
        return
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=temporary_name(path.name), suffix=TEMPORARY_SUFFIX, dir=path.parent
        )
    except OSError as exc:
        raise OutputError(describe_os_error(_naming(exc, path))) from None
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, mode, encoding=encoding if text else None) as handle:
            yield handle
        _refuse_symlink_or_folder(path)
        if exclusive:
            _link_exclusive(tmp_name, path)
        else:
            os.replace(tmp_name, path)
    except OSError as exc:
        _unlink_quietly(tmp_name)
        raise OutputError(describe_os_error(_naming(exc, path))) from None
    except BaseException:
        _unlink_quietly(tmp_name)
        raise


def _naming(exc: OSError, path: Path) -> OSError:
    """``exc`` naming ``path``, not the temporary file or descriptor it happened on."""
    if exc.filename is None or not str(exc.filename).startswith(str(path)):
        exc.filename = str(path)
    return exc


_ANONYMOUS_UNSUPPORTED = (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT)
_anonymous_files = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")
"""Whether files may be written unnamed (Linux ``O_TMPFILE``) and named when complete."""


def _open_anonymous(path: Path) -> int | None:
    """A file descriptor of an unnamed file in ``path``'s folder (``O_TMPFILE``; its mode is
    ``0o666`` less the umask), or None where the system or file system has none.

    An unnamed file costs one directory operation, the link that names it when complete,
    where a named temporary file costs three (create, rename or link, unlink): on a disk
    where creating files is what a run waits on, that is a third of the work. A run killed
    mid-write leaves nothing behind.
    """
    global _anonymous_files
    if not _anonymous_files:
        return None
    try:
        return os.open(path.parent, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        if exc.errno in _ANONYMOUS_UNSUPPORTED:
            _anonymous_files = False  # e.g. an overlay or network file system: named ones
            return None
        raise OutputError(describe_os_error(_naming(exc, path))) from None


@contextmanager
def _anonymous_atomic_open(
    fd: int, path: Path, mode: str, encoding: str | None, exclusive: bool
) -> Iterator[IO[Any]]:
    """Write the unnamed file ``fd``; name it ``path`` when the block succeeds."""
    try:
        with os.fdopen(fd, mode, encoding=encoding, closefd=False) as handle:
            yield handle
        _name_anonymous(fd, path, exclusive)
    except OSError as exc:
        raise OutputError(describe_os_error(_naming(exc, path))) from None
    finally:
        os.close(fd)


def _name_anonymous(fd: int, path: Path, exclusive: bool) -> None:
    """Link the complete unnamed file ``fd`` at ``path``: at once if nothing is there; when
    ``exclusive``, a file already there is a clash unless it holds the same bytes; otherwise
    it is replaced atomically (linked under a temporary name, renamed over it)."""
    source = f"/proc/self/fd/{fd}"
    folder = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:  # dst_dir_fd makes os.link call linkat(..., AT_SYMLINK_FOLLOW): the magic link
            os.link(source, path.name, dst_dir_fd=folder)
            return
        except FileExistsError:
            pass
        _refuse_symlink_or_folder(path)
        if exclusive:
            _settle_existing(source, path)
            return
        temporary = _link_temporary(source, path.name, folder)
        try:
            os.replace(temporary, path.name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with suppress(OSError):
                os.unlink(temporary, dir_fd=folder)
            raise
    finally:
        os.close(folder)


def _link_temporary(source: str, name: str, folder: int) -> str:
    """Link ``source`` into ``folder`` under a fresh temporary name for ``name``; the name."""
    for _ in range(100):
        temporary = f"{temporary_name(name)}{os.urandom(4).hex()}{TEMPORARY_SUFFIX}"
        try:
            os.link(source, temporary, dst_dir_fd=folder)
            return temporary
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", name)


@contextmanager
def _remote_atomic_open(
    path: Path, mode: str, encoding: str | None, exclusive: bool
) -> Iterator[IO[Any]]:
    fs, fs_path = _fs_path(path)
    with tempfile.NamedTemporaryFile(prefix=TEMPORARY_PREFIX, suffix=TEMPORARY_SUFFIX) as spool:
        with open(spool.name, mode, encoding=encoding) as handle:
            yield handle
        if exclusive and fs.exists(fs_path):
            if _remote_holds(fs, fs_path, Path(spool.name).read_bytes()):
                return  # the same item written again (a retry after a lost worker)
            raise clash(path)
        try:
            fs.put_file(spool.name, fs_path)
        except OSError as exc:
            raise OutputError(describe_os_error(exc)) from None
        except Exception as exc:  # drivers raise their own types (botocore, aiohttp)
            raise OutputError(f"cannot write {path}: {exc}") from None


def _put_bytes(path: Path, data: bytes, exclusive: bool) -> None:
    """One PUT of ``data``; when ``exclusive``, a conditional one (If-None-Match) where the
    driver takes ``mode="create"``, else a check first."""
    fs, fs_path = _fs_path(path)
    try:
        if exclusive:
            try:
                fs.pipe_file(fs_path, data, mode="create")
                return
            except TypeError:  # a driver without conditional writes
                if fs.exists(fs_path):
                    if _remote_holds(fs, fs_path, data):
                        return
                    raise clash(path) from None
        fs.pipe_file(fs_path, data)
    except FileExistsError:
        if _remote_holds(fs, fs_path, data):
            return  # the same item written again (a retry after a lost worker)
        raise clash(path) from None
    except ItemError:
        raise
    except Exception as exc:  # drivers raise their own types (botocore, aiohttp)
        raise OutputError(f"cannot write {path}: {exc}") from None


def _link_exclusive(tmp_name: str, path: Path) -> None:
    """Put ``tmp_name`` at ``path`` only if nothing is there (a hard link, atomic; where the
    file system has none, a check then a rename). A file already there with the very same
    bytes is no clash: it is the same item written again (a retry after its worker was lost
    mid-item, locally or on a Dask cluster); nothing is lost either way."""
    try:
        try:
            os.link(tmp_name, path)
        except FileExistsError:
            _settle_existing(tmp_name, path)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            if not os.path.lexists(path):
                os.replace(tmp_name, path)
                return
            _settle_existing(tmp_name, path)
    finally:
        _unlink_quietly(tmp_name)


def _refuse_symlink_or_folder(path: Path) -> None:
    """A symlink or a folder at ``path`` is never written through or replaced."""
    if os.path.islink(path) or os.path.isdir(path):
        raise OutputError(f"cannot write {path}: a symlink or folder is in the way")


def _settle_existing(candidate: str, path: Path) -> None:
    """An exclusive write found a file at ``path``: the same bytes as ``candidate`` are the
    same item written again (a retry after its worker was lost), anything else a clash."""
    if not _same_bytes(candidate, path):
        raise clash(path) from None


def _same_bytes(a: str, b: Path) -> bool:
    """Whether the regular files ``a`` and ``b`` hold the same bytes (False on any error; a
    symlink at ``b`` is never the same). Read in full every time: no cache by name, as
    ``filecmp`` keeps, since ``a`` may be a reused ``/proc/self/fd`` name."""
    try:
        if os.path.islink(b) or os.path.getsize(a) != os.path.getsize(b):
            return False
        with open(a, "rb") as first, open(b, "rb") as second:
            while True:
                block = first.read(1 << 20)
                if block != second.read(1 << 20):
                    return False
                if not block:
                    return True
    except OSError:
        return False


def _remote_holds(fs: Any, fs_path: str, data: bytes) -> bool:
    """Whether the object at ``fs_path`` holds exactly ``data`` (False on any error)."""
    try:
        return bool(fs.size(fs_path) == len(data) and fs.cat_file(fs_path) == data)
    except Exception:  # drivers raise their own types
        return False


def _unlink_quietly(name: str) -> None:
    with suppress(OSError):
        os.unlink(name)


def atomic_write_bytes(path: Path, data: bytes, *, checked: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (one PUT remotely); ``checked`` as for
    :func:`atomic_open`."""
    guard = current_guard() if checked else None
    if is_remote(path):
        _put_bytes(path, data, guard.check(path) if guard is not None else False)
        return
    with atomic_open(path, "wb", checked=checked) as handle:
        handle.write(data)


def remove(path: Path) -> None:
    """Delete the file ``path`` if it exists (the pipeline's ``--overwrite`` uses this only on
    files a manifest says segconvert wrote); a file the run's guard calls foreign is left."""
    guard = current_guard()
    if guard is not None and guard.relative(path) in guard.foreign:
        return
    try:
        if is_remote(path):
            fs, fs_path = _fs_path(path)
            if fs.exists(fs_path):
                fs.rm_file(fs_path)
        else:
            path.unlink(missing_ok=True)
    except OSError as exc:
        raise OutputError(describe_os_error(exc, "cannot remove")) from None


def list_files(root: Path) -> dict[str, tuple[int, float]]:
    """Every file under ``root``: relative POSIX name -> (size, modification time), in the
    order of the names (see :func:`iter_files`)."""
    return {name: (size, mtime) for name, size, mtime in iter_files(root)}


def iter_files(root: Path) -> Iterator[tuple[str, int, float]]:
    """Every file under ``root`` as ``(relative POSIX name, size, modification time)``, sorted
    by name, produced as it goes: locally one folder's names are held at a time (an output of
    a million masks is never listed whole in memory with its sizes). Symlinks are listed by
    their own name and not followed into folders."""
    if is_remote(root):
        yield from sorted(_remote_files(root))
        return
    if root.is_dir():
        yield from _local_files(os.fspath(root), "")


def _remote_files(root: Path) -> Iterator[tuple[str, int, float]]:
    fs, fs_path = _fs_path(root)
    base = fs_path.rstrip("/")
    try:
        found = fs.find(base, detail=True)
    except FileNotFoundError:
        return
    for name, info in found.items():
        if info.get("type") == "directory" or name.rstrip("/") == base:
            continue
        yield name[len(base) + 1 :], int(info.get("size") or 0), _modified(info)


def _local_files(folder: str, prefix: str) -> Iterator[tuple[str, int, float]]:
    """The files below ``folder`` in name order. A sub-folder sorts as its name plus ``/`` (so
    its files fall where their full names do: ``a.txt`` < ``a/x`` < ``a0``); a symlink to a
    folder is skipped, as ``os.walk`` does."""
    names = []
    try:
        with os.scandir(folder) as listing:
            for entry in listing:
                try:
                    if entry.is_dir():
                        if not entry.is_symlink():
                            names.append(entry.name + "/")
                        continue
                except OSError:
                    pass
                names.append(entry.name)
    except OSError:
        return
    names.sort()
    for name in names:
        if name.endswith("/"):
            yield from _local_files(os.path.join(folder, name[:-1]), prefix + name)
            continue
        try:
            info = os.lstat(os.path.join(folder, name))
        except OSError:
            continue
        yield prefix + name, info.st_size, info.st_mtime


MODIFIED_KEYS = ("mtime", "LastModified", "last_modified", "updated", "created")
"""Where drivers put an object's modification time in its listing: gcsfs and local ``mtime``,
s3fs ``LastModified``, adlfs ``last_modified`` (GCS's own ``updated``; memory's ``created``)."""


def _modified(info: Mapping[str, Any]) -> float:
    """An object's modification time (seconds since the epoch) from a driver's listing entry
    (a datetime, a number or an ISO 8601 string under one of :data:`MODIFIED_KEYS`); 0 when
    the listing has none."""
    import datetime

    for key in MODIFIED_KEYS:
        value = info.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, datetime.datetime):
            return value.timestamp()
        if isinstance(value, str):
            with suppress(ValueError):
                return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return 0.0


def inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies below it (symlinks resolved locally)."""
    if is_remote(path) != is_remote(folder):
        return False
    if is_remote(path):
        a, b = _normal(str(path)), _normal(str(folder)).rstrip("/")
        return a == b or a.startswith(b + "/")
    a, b = real_path(path), real_path(folder)
    return a == b or a.startswith(b.rstrip(os.sep) + os.sep)


def contained_name(root: Path, relative: str, *, what: str) -> Path:
    """``root / relative`` for a name given on the command line (``--json-name``): refused
    when absolute, with ``..``, empty, or with a NUL character."""
    pure = PurePosixPath(relative.replace("\\", "/"))
    if (
        not relative
        or "\x00" in relative
        or pure.is_absolute()
        or ".." in pure.parts
        or relative.strip("./") == ""
    ):
        raise UsageError(f"{what} {relative!r} must be a plain name inside the output folder")
    return root.joinpath(*pure.parts)


# ---------------------------------------------------------------- streamed aggregates


class Spool:
    """Records kept in a local temporary file, to be read back in as many passes as an
    aggregate needs (ids first, then each array), so the parent never holds them all.

    The file is this process's own scratch space, deleted on close and never read by anything
    else, so records are pickled: several times cheaper to write and read back than JSON,
    which matters when the parent re-reads millions of annotations in each pass. Each pass
    yields fresh copies: changing a record read in one pass does not change the next.
    """

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix=TEMPORARY_PREFIX)  # noqa: SIM115 - close()
        self.count = 0

    def add(self, record: Any) -> None:
        """Append one picklable record."""
        pickle.dump(record, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self.count += 1

    def __iter__(self) -> Iterator[Any]:
        self._file.flush()
        self._file.seek(0)
        for _ in range(self.count):
            yield pickle.load(self._file)
        self._file.seek(0, os.SEEK_END)

    def close(self) -> None:
        """Delete the spool file."""
        self._file.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


STREAM_BATCH = 512
"""Array elements encoded together by the streamed writers: one ``json.dumps`` call per batch
instead of per element (a call costs far more than a small element), still a bounded amount
of memory."""


def write_json_streamed(
    path: Path, document: Mapping[str, Any], streams: Mapping[str, Iterable[Any]]
) -> None:
    """Write ``document`` as JSON to ``path`` atomically, the keys in ``streams`` as arrays
    written in batches from their iterables (in the order of ``document``'s keys, where a
    placeholder for each must be). The bytes equal ``json.dump`` of the whole document."""
    dumps = _json().dumps
    with atomic_open(path, "w") as handle:
        handle.write("{")
        for number, (key, value) in enumerate(document.items()):
            handle.write((", " if number else "") + dumps(key) + ": ")
            if key not in streams:
                handle.write(dumps(value, allow_nan=False))
                continue
            _write_array(handle, streams[key])
        handle.write("}\n")


def write_json_array_streamed(path: Path, items: Iterable[Any]) -> None:
    """Write ``items`` as one JSON array to ``path`` atomically, in batches (a COCO results
    list of millions of detections is never held whole). The bytes equal ``json.dump``'s."""
    with atomic_open(path, "w") as handle:
        _write_array(handle, items)
        handle.write("\n")


class JsonText(str):
    """A value already encoded as JSON text (what ``json.dumps`` gives for it). The streamed
    writers write it as it is: a worker can encode its item's entries once, where the work is
    spread, and the parent only joins the texts."""

    __slots__ = ()


def _write_array(handle: IO[str], items: Iterable[Any]) -> None:
    """``items`` as a JSON array, :data:`STREAM_BATCH` elements per encoding call: a batch
    encodes as ``[a, b]``, whose inside is exactly the elements with ``json``'s separator.
    A :class:`JsonText` element is written as it is."""
    handle.write("[")
    batch: list[Any] = []
    started = False
    for item in items:
        batch.append(item)
        if len(batch) == STREAM_BATCH:
            handle.write((", " if started else "") + _encode_elements(batch))
            started, batch = True, []
    if batch:
        handle.write((", " if started else "") + _encode_elements(batch))
    handle.write("]")


def _encode_elements(batch: list[Any]) -> str:
    """The elements of ``batch`` as JSON, joined by ``json``'s separator: each run of values
    encoded in one call, each :class:`JsonText` as it is."""
    dumps = _json().dumps
    pieces = []
    for encoded, group in itertools.groupby(batch, key=lambda item: type(item) is JsonText):
        run = list(group)
        pieces.append(", ".join(run) if encoded else dumps(run, allow_nan=False)[1:-1])
    return ", ".join(pieces)


def _json() -> Any:
    import json

    return json
