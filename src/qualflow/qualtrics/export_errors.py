"""The error of an unreadable export file, in a module without pyarrow: the command line
catches it without importing what reads export files (:mod:`qualflow.qualtrics.export_file`)."""

from __future__ import annotations

__all__ = ["ExportFileError"]


class ExportFileError(ValueError):
    """A response export file cannot be read: corrupt, truncated, not the declared format, or a
    value that does not fit its column's type (``row`` and ``column`` say where)."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.row = row
        self.column = column


ExportFileError.__module__ = "qualflow.qualtrics.export_file"
