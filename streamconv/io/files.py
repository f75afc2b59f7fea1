"""Files: audio through libsndfile, ``.csv`` sensor data, ``.raw``/``.pcm`` raw PCM.

Files are read and written in blocks, so memory does not grow with the file. An output file is
written under a temporary name in the same directory and renamed when complete (`close`); a job
that fails (`abort`) removes it, so no half file is ever left under the real name.

Integer audio (PCM_16, PCM_24, ...) is converted by full scale in both directions by this module,
not by libsndfile, so integer samples round-trip exactly and clipping is counted.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile

import numpy as np
import soundfile as sf

from streamconv.errors import CommandLineError, RuntimeFailure, UsageError
from streamconv.io import pcm
from streamconv.io.base import Sink, Source, float_type
from streamconv.io.pipes import RawSink, RawSource

_EXTENSION_ALIASES = {"aif": "AIFF", "aifc": "AIFF", "oga": "OGG", "opus": "OGG"}
# Integer subtypes, as the integer type they are read and written through (bits of precision).
_INT_SUBTYPES = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32}
# Sample types processed in float64 under dtype="auto": float32's rounding noise (about
# 1e-7 of full scale) would reach their own resolution.
_EXACT_IN_FLOAT64_ONLY = {"PCM_24", "PCM_32", "DOUBLE", "ALAC_24", "ALAC_32"}
_PCM_SUBTYPES = {"s16le": "PCM_16", "s32le": "PCM_32", "f32le": "FLOAT", "f64le": "DOUBLE"}
_DECLARED_TOO_LONG = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def audio_format(path: str) -> str:
    """Return the libsndfile major format for a path's extension, or raise `UsageError`."""
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    fmt = _EXTENSION_ALIASES.get(ext, ext.upper())
    if fmt not in sf.available_formats():
        raise UsageError(
            f"{path}: unknown file type {('.' + ext) if ext else '(no extension)'} "
            "(audio: .wav .flac .ogg .aiff ...; sensor data: .csv; raw PCM: .raw .pcm)"
        )
    return fmt


def _check_readable(path: str) -> None:
    if not os.path.exists(path):
        raise UsageError(f"{path}: no such file")
    if os.path.isdir(path):
        raise UsageError(f"{path}: is a directory, not a file")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{path}: permission denied")


_SOUNDFILE_ERRORS = (sf.LibsndfileError, RuntimeError, OSError)


class _PlainSoundFile(sf.SoundFile):
    """A SoundFile for writing that neither fsyncs on close nor keeps a PEAK chunk.

    Both cost a job as much as the filtering of a 255-tap FIR (10 min of stereo float: 0.2-0.3 s
    of fsync, 0.1 s of peak scanning), and sox writes neither:

    - soundfile's ``close()`` calls ``flush()``, libsndfile's ``sf_write_sync``, an fsync that
      waits for the disk. Write-back is left to the kernel, as sox, cp and ffmpeg do; what the
      contract asks (docs/contract.md, "Bad input"), that a failure never leaves a half file
      that looks whole, comes from writing under a temporary name and renaming. ``sf_close``
      still writes the final header.
    - libsndfile scans every float sample for the optional PEAK chunk of WAV/AIFF files.
      soundfile has no public ``sf_command``, so its library handle is used when present.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        library = getattr(sf, "_snd", None)
        if library is not None:
            library.sf_command(self._file, _SFC_SET_ADD_PEAK_CHUNK, sf._ffi.NULL, 0)

    def flush(self) -> None:
        pass


_SFC_SET_ADD_PEAK_CHUNK = 0x1050  # sndfile.h


#: Temporary files this process has open (`AtomicFile`), so a sweep never takes a live one.
_LIVE_TEMPS: set[str] = set()


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def _exchange(new: str, old: str) -> bool:
    """Swap the files at ``new`` and ``old`` atomically (Linux ``renameat2``); False where the
    system cannot (or ``old`` does not exist), for the caller to rename instead.

    Why not ``os.replace``: ext4 flushes a file renamed over another one to disk before the
    rename returns (its ``auto_da_alloc`` heuristic), 0.05-0.1 s for 100 MB written; a swap
    leaves the write-back to the kernel, as for a new file (streamconv never fsyncs an
    output, `_PlainSoundFile`). The caller removes the old file, now at ``new``.
    """
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    return (
        renameat2(_AT_FDCWD, os.fsencode(new), _AT_FDCWD, os.fsencode(old), _RENAME_EXCHANGE) == 0
    )


def write_failure(name: str, exc: Exception, sndfile=None) -> RuntimeFailure:
    """The one-line error of a failed write to ``name``, naming the system's reason.

    An ``OSError`` gives its ``strerror`` (``out.raw: No space left on device``); libsndfile
    only says "System error." in its exception, but its handle ``sndfile`` (a SoundFile) keeps
    the system's words, which are used instead (``out.wav: No space left on device``).
    """
    if isinstance(exc, OSError) and exc.strerror:
        return RuntimeFailure(f"{name}: {exc.strerror}")
    handle = getattr(sndfile, "_file", None)
    library = getattr(sf, "_snd", None)
    if handle is not None and library is not None:
        text = sf._ffi.string(library.sf_strerror(handle)).decode(errors="replace")
        if text.startswith("System error :"):
            return RuntimeFailure(f"{name}: {text.split(':', 1)[1].strip().rstrip('.')}")
    # A handle already closed (libsndfile's last header write failed in sf_close) keeps no
    # words: a system error on a full file system is that.
    if getattr(exc, "code", None) == _SFE_SYSTEM and _no_space_left(name):
        return RuntimeFailure(f"{name}: {os.strerror(errno.ENOSPC)}")
    return RuntimeFailure(f"{name}: write failed: {exc}")


_SFE_SYSTEM = 2  # libsndfile's "System error." (sndfile.h: SFE_SYSTEM)


def _no_space_left(path: str) -> bool:
    try:
        st = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return False
    return st.f_bavail == 0


def _temp_prefix(path: str) -> str:
    return f".{os.path.basename(path)}."


def _owner_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def remove_stale_temps(path: str) -> list[str]:
    """Remove the temporary files that writers of ``path`` killed before `commit` or
    `discard` (SIGKILL, power loss) left beside it; return their names.

    They are named ``.NAME.PID.XXXXXXXX.part``: one whose process no longer exists, or is
    this process without having it open, is stale. One of a live process stays.
    """
    directory = os.path.dirname(os.path.abspath(path))
    prefix = _temp_prefix(path)
    removed: list[str] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(prefix) or ".part" not in name:
            continue
        pid = name[len(prefix) :].split(".", 1)[0]
        full = os.path.join(directory, name)
        if not pid.isdigit() or full in _LIVE_TEMPS:
            continue
        if int(pid) == os.getpid() or not _owner_alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(full)
                removed.append(full)
    return removed


class AtomicFile:
    """A temporary file beside `path` that becomes `path` on `commit` and vanishes on `discard`.

    The temporary name is hidden and tagged with the writer's PID, ``.NAME.PID.XXXXXXXX.part``,
    so it is never taken for an output; those a killed writer left are removed here
    (`remove_stale_temps`) when the next writer of `path` starts.
    """

    def __init__(self, path: str, suffix: str = ""):
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise UsageError(f"{path}: directory {directory} does not exist")
        if os.path.isdir(path):
            raise UsageError(f"{path}: is a directory")
        self.path = path
        self.stale_removed = remove_stale_temps(path)
        try:
            fd, self.tmp_path = tempfile.mkstemp(
                prefix=f"{_temp_prefix(path)}{os.getpid()}.",
                suffix=".part" + suffix,
                dir=directory,
            )
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise RuntimeFailure(f"{path}: {exc.strerror}") from None
            raise UsageError(f"{path}: cannot create: {exc.strerror}") from None
        os.close(fd)
        _LIVE_TEMPS.add(self.tmp_path)
        # mkstemp makes the file private (0600); the finished file gets the usual permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp_path, 0o666 & ~umask)

    def commit(self) -> None:
        if _exchange(self.tmp_path, self.path):
            # The file that was at `path`; one left by a failure here is a stale temporary.
            with contextlib.suppress(OSError):
                os.unlink(self.tmp_path)
        else:
            os.replace(self.tmp_path, self.path)
        _LIVE_TEMPS.discard(self.tmp_path)

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp_path)
        _LIVE_TEMPS.discard(self.tmp_path)

    def close_and_commit(self, handle, name: str, errors=(OSError,)) -> None:
        """Close ``handle`` (open on the temporary file), then rename it into place; if the
        close fails (disk full on the last flush), discard it and raise ``RuntimeFailure``."""
        try:
            handle.close()
        except errors as exc:
            self.discard()
            raise write_failure(name, exc, handle) from None
        self.commit()

    def close_and_discard(self, handle, errors=(OSError,)) -> None:
        """Close ``handle`` as well as it goes, and remove the temporary file."""
        with contextlib.suppress(*errors):
            handle.close()
        self.discard()


class SoundFileSource(Source):
    """Read an audio file through libsndfile, block by block.

    Parameters
    ----------
    path : str
        wav, flac, ogg, aiff, ... (any format libsndfile knows).
    dtype : numpy dtype or "auto"
        float32 or float64, the type of the blocks; ``"auto"``: float32 where it is exact.

    Raises
    ------
    UsageError
        Missing, empty, unreadable, garbage or truncated file (named, with libsndfile's reason).
    """

    def __init__(self, path: str, dtype=np.float64):
        _check_readable(path)
        self.name = path
        try:
            self._file = sf.SoundFile(path)
        except (sf.LibsndfileError, RuntimeError) as exc:
            reason = getattr(exc, "error_string", None) or str(exc)
            if os.path.getsize(path) == 0:
                reason = "file is empty"
            raise UsageError(f"{path}: cannot read audio: {reason}") from None
        self.sample_rate = float(self._file.samplerate)
        self.channels = self._file.channels
        self.subtype = self._file.subtype
        self.dtype = float_type(dtype, self.subtype not in _EXACT_IN_FLOAT64_ONLY)
        self.frames_read = 0
        self.frames = self._file.frames
        declared = _DECLARED_TOO_LONG.search(self._file.extra_info)
        if declared and int(declared.group(2)) < int(declared.group(1)) < 0xFFFFFF00:
            self._file.close()
            raise UsageError(
                f"{path}: truncated: the header promises {declared.group(1)} bytes of audio, "
                f"the file holds {declared.group(2)}"
            )
        self._int_bits = _INT_SUBTYPES.get(self.subtype)

    def _read(self, frames: int) -> np.ndarray:
        try:
            if self._int_bits:
                raw = self._file.read(frames, dtype="int32", always_2d=True)
                block = raw.astype(self.dtype)
                block *= 2.0**-31
            else:
                block = self._file.read(frames, dtype=self.dtype.name, always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise UsageError(
                f"{self.name}: corrupt audio after frame {self.frames_read}: {exc}"
            ) from None
        if not len(block) and 0 < self.frames != self.frames_read and self.frames < 2**62:
            raise UsageError(
                f"{self.name}: truncated: {self.frames_read} of {self.frames} frames readable"
            )
        return block

    @property
    def seekable(self) -> bool:
        """Whether :meth:`seek` works (libsndfile can seek most formats, not pipes)."""
        return self._file.seekable()

    def seek(self, frame: int) -> None:
        """Continue reading at ``frame`` (an index from the file's start)."""
        self._file.seek(frame)
        self.frames_read = frame

    def close(self) -> None:
        self._file.close()


class SoundFileSink(Sink):
    """Write an audio file through libsndfile under a temporary name; rename it on `close`.

    Parameters
    ----------
    path : str
        The output file; its extension picks the format.
    sample_rate : float
        Frames per second (libsndfile stores an integer rate).
    channels : int
        Samples per frame.
    subtype : str, optional
        A libsndfile subtype (``PCM_16``, ``FLOAT``, ...); default: the format's default.
    """

    def __init__(self, path: str, sample_rate: float, channels: int, subtype: str | None = None):
        fmt = audio_format(path)
        if subtype is not None and not sf.check_format(fmt, subtype):
            raise UsageError(f"{path}: a {fmt} file cannot hold {subtype} samples")
        self.name = path
        self.sample_rate = float(sample_rate)
        self.channels = int(channels)
        self.clipped = 0
        self._atomic = AtomicFile(path)
        try:
            # Through a descriptor, not the path: libsndfile opens a path with O_TRUNC, and on
            # ext4 closing a truncated file flushes it to disk first (auto_da_alloc, 0.09 s for
            # 10 min of stereo float). mkstemp made the file, empty; nothing to truncate.
            fd = os.open(self._atomic.tmp_path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            self._atomic.discard()
            raise RuntimeFailure(f"{path}: cannot open: {exc.strerror}") from None
        try:
            self._file = _PlainSoundFile(
                fd,
                "w",
                closefd=True,
                samplerate=round(sample_rate),
                channels=self.channels,
                subtype=subtype,
                format=fmt,
            )
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
            with contextlib.suppress(OSError):  # libsndfile closes it when its open fails
                os.close(fd)
            self._atomic.discard()
            if _no_space_left(path):  # the header did not fit: not the user's mistake
                raise RuntimeFailure(f"{path}: {os.strerror(errno.ENOSPC)}") from None
            raise UsageError(f"{path}: cannot write audio: {exc}") from None
        self.subtype = self._file.subtype
        self._int_bits = _INT_SUBTYPES.get(self.subtype)

    def _write(self, block: np.ndarray) -> None:
        if self._int_bits:
            # Quantize at the file's own precision and hand libsndfile integers that it only
            # shifts, so rounding and clipping are ours: exact, and counted.
            samples, clipped = pcm.quantize_bits(block, self._int_bits)
            self.clipped += clipped
            container = np.int16 if self._int_bits <= 16 else np.int32
            shift = 8 * np.dtype(container).itemsize - self._int_bits
            samples = (samples << shift).astype(container)
        else:
            samples = block
        try:
            self._file.write(samples)
        except _SOUNDFILE_ERRORS as exc:
            raise write_failure(self.name, exc, self._file) from None

    def _commit(self) -> None:
        self._atomic.close_and_commit(self._file, self.name, _SOUNDFILE_ERRORS)

    def _discard(self) -> None:
        self._atomic.close_and_discard(self._file, (Exception,))


def pcm_subtype(fmt: str | None) -> str | None:
    """Return the libsndfile subtype matching a raw PCM format name (``s16le`` -> ``PCM_16``)."""
    if fmt is None:
        return None
    pcm.pcm_dtype(fmt)
    return _PCM_SUBTYPES[fmt]


def open_raw_file_source(path, fmt, sample_rate, channels, dtype=np.float64) -> RawSource:
    """Open a ``.raw``/``.pcm`` file of interleaved PCM (needs format, rate and channels)."""
    _check_readable(path)
    fmt, sample_rate, channels = raw_params(path, fmt, sample_rate, channels)
    return RawSource(
        open(path, "rb"),
        fmt,
        sample_rate,
        channels,
        name=path,
        dtype=dtype,
        close_stream=True,
    )


class RawFileSink(RawSink):
    """Write a ``.raw``/``.pcm`` file under a temporary name; rename it on `close`."""

    def __init__(self, path: str, fmt: str, sample_rate: float, channels: int):
        pcm.pcm_dtype(fmt)
        self._atomic = AtomicFile(path)
        super().__init__(open(self._atomic.tmp_path, "wb"), fmt, sample_rate, channels, name=path)

    def _commit(self) -> None:
        self._atomic.close_and_commit(self._stream, self.name)

    def _discard(self) -> None:
        self._atomic.close_and_discard(self._stream)


def raw_params(
    name: str,
    fmt: str | None,
    sample_rate: float | None,
    channels: int | None,
    format_option: str = "--format",
) -> tuple[str, float, int]:
    """``(fmt, sample_rate, channels)`` of a raw PCM stream, all given (and the format known);
    else `CommandLineError` naming the missing options (`format_option`: ``--out-format`` for an
    output, whose ``--format`` would describe the input)."""
    if fmt is None or sample_rate is None or channels is None:
        given = ((format_option, fmt), ("--rate", sample_rate), ("--channels", channels))
        missing = [opt for opt, value in given if value is None]
        raise CommandLineError(f"{name}: raw PCM needs {', '.join(missing)}")
    pcm.pcm_dtype(fmt)
    return fmt, sample_rate, channels
