"""User-facing errors.

Every error a person can cause (a bad file, a bad recipe key, a missing weight file) is an
:class:`OpenferError`. Its message says what was wrong, where (file, line, field) and what to do;
the CLI prints it without a traceback and exits with status 2.
"""

from __future__ import annotations

from pathlib import Path


class OpenferError(Exception):
    """An error caused by the user's input, with a message meant for a person."""


class DataFormatError(OpenferError, ValueError):
    """A data file does not have the format its owners publish.

    ``DataFormatError(path, "expected 2304 pixel values, found 2303", line=17, field="pixels")``
    reads ``fer2013.csv, line 17, field 'pixels': expected 2304 pixel values, found 2303``.
    """

    def __init__(self, path: str | Path, problem: str | None = None, *,
                 line: int | None = None, field: str | None = None, hint: str | None = None):
        if problem is None:       # one finished message (how DataLoader workers re-raise it)
            self.path, self.line, self.field, self.problem = None, None, None, str(path)
            super().__init__(str(path))
            return
        self.path = str(path)
        self.line = line
        self.field = field
        self.problem = problem
        where = self.path
        if line is not None:
            where += f", line {line}"
        if field is not None:
            where += f", field {field!r}"
        message = f"{where}: {problem}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)


class RecipeError(OpenferError, ValueError):
    """A training recipe (YAML) or a command-line override is invalid."""


class FileWriteError(OpenferError, OSError):
    """A file could not be written (full disk, read-only or forbidden place, a path that cannot
    exist). An :class:`OSError` too, with the original ``errno``, so handlers of either see it."""

    def __init__(self, path: str | Path, cause: OSError):
        super().__init__(f"cannot write {path}: {write_failure_reason(cause)}; nothing was "
                         "written there. Choose another location, or free space and retry")
        self.errno, self.strerror, self.filename = cause.errno, cause.strerror, str(path)

    def __str__(self) -> str:                  # OSError's would print errno and strerror only
        return str(self.args[0])


def write_failure_reason(exc: OSError) -> str:
    """Why a write failed, in words ("the disk is full", "permission denied", ...)."""
    import errno

    return {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
            errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
            errno.EPERM: "permission denied",
            errno.ENOENT: "no file can be created in its folder (it does not exist, or does "
                          "not accept files)",
            errno.ENOTDIR: "a part of its folder path is a file, not a folder",
            errno.EEXIST: "a part of its folder path is a file, not a folder"}.get(
        exc.errno, exc.strerror or str(exc))

