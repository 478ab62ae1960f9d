"""What ``export_responses`` returns: the downloaded file, readable, plus what the job said."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast

from qualflow.qualtrics.export_file import ExportFile, ExportFormat
from qualflow.qualtrics.resources.exports import CompletedExport

__all__ = ["READABLE_FORMATS", "ExportResult"]

READABLE_FORMATS = ("csv", "tsv", "json", "ndjson")


class ExportResult(ExportFile):
    """An :class:`~qualflow.qualtrics.export_file.ExportFile` over a finished export.

    Read it with ``iter_rows()``, ``iter_batches()`` or ``write(dest, "parquet")``. Beyond the
    file it keeps the export job's facts: ``continuation_token`` (pass it to the next export
    to get only newer responses), ``survey_id``, ``progress_id``, ``file_id`` and ``size``.
    The file stays on disk at ``path`` until you delete it.
    """

    def __init__(
        self,
        completed: CompletedExport,
        *,
        label_map: Mapping[str, Mapping[str, str]] | None = None,
        time_zone: str = "UTC",
        decimal_comma: bool = False,
        survey_metadata_ids: Sequence[str] | None = None,
        sort_by_last_modified_date: bool = False,
    ) -> None:
        if completed.format not in READABLE_FORMATS:
            raise ValueError(f"{completed.format} exports cannot be read as rows")
        super().__init__(
            completed.path,
            format=cast(ExportFormat, completed.format),
            compressed=completed.compressed,
            label_map=label_map,
            time_zone=time_zone,
            decimal_comma=decimal_comma,
            survey_metadata_ids=survey_metadata_ids,
            sort_by_last_modified_date=sort_by_last_modified_date,
        )
        self.completed = completed

    @property
    def continuation_token(self) -> str | None:
        return self.completed.continuation_token

    @property
    def survey_id(self) -> str:
        return self.completed.survey_id

    @property
    def progress_id(self) -> str:
        return self.completed.progress_id

    @property
    def file_id(self) -> str:
        return self.completed.file_id

    @property
    def size(self) -> int:
        """Bytes downloaded."""
        return self.completed.size

    @property
    def file_path(self) -> Path:
        return self.completed.path
