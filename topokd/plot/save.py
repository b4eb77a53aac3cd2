"""Write figures atomically, in PNG and SVG."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from . import _style as S

FORMATS = ("png", "svg")


def _formats(formats: Sequence[str] | str) -> tuple[str, ...]:
    fmts = (formats,) if isinstance(formats, str) else tuple(formats)
    if not fmts:
        raise ValueError(f"give at least one format of {list(FORMATS)}")
    bad = [f for f in fmts if f not in FORMATS]
    if bad:
        raise ValueError(f"unsupported figure format {bad[0]!r}; choose from {list(FORMATS)}")
    return tuple(dict.fromkeys(fmts))


def figure_paths(path, formats: Sequence[str] | str = FORMATS) -> list[Path]:
    """The files :func:`save_figure` writes for ``path`` (suffix replaced by each format)."""
    path = Path(path)
    return [path.with_name(f"{path.name}.{fmt}") if path.suffix.lstrip(".") not in FORMATS
            else path.with_suffix(f".{fmt}") for fmt in _formats(formats)]


def check_free(paths: Iterable[Path], overwrite: bool) -> None:
    """Raise ``FileExistsError`` (one line) for the first existing path unless ``overwrite``."""
    if overwrite:
        return
    for p in paths:
        if p.exists():
            raise FileExistsError(f"{p} already exists; pass --force (overwrite=True) to replace it")


def _umask() -> int:
    """The process's umask, read from /proc where possible (no set-and-restore race)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # pragma: no cover - not Linux
    os.umask(mask)
    return mask


def save_figure(fig, path, formats: Sequence[str] | str = FORMATS, *, overwrite: bool = False,
                dpi: int = 150) -> list[Path]:
    """Save ``fig`` as ``path.png`` and ``path.svg`` (or the given ``formats``).

    ``path``: the file name without suffix (a ``.png`` / ``.svg`` suffix is
    replaced); its folder is created.  Each file is written to a temporary
    file in the same folder and moved into place with :func:`os.replace`, so
    a reader never sees a half-written figure; the file gets the usual
    permissions of a new file (``0o666`` minus the umask).  An existing file
    is refused (``FileExistsError``, before anything is written) unless
    ``overwrite``.  ``dpi``: resolution of the PNG.  Returns the paths written.
    """
    paths = figure_paths(path, formats)
    check_free(paths, overwrite)
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    mode = 0o666 & ~_umask()
    written = []
    import matplotlib

    with matplotlib.rc_context(S.STYLE):
        for p in paths:
            fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fig.savefig(fh, format=p.suffix[1:], dpi=dpi, bbox_inches="tight", pad_inches=0.08,
                                metadata={"Software": None} if p.suffix == ".png" else {"Date": None})
                os.chmod(tmp, mode)
                os.replace(tmp, p)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            written.append(p)
    return written
