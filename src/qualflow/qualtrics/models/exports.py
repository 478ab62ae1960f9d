"""Response exports: the options of a job and its progress."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from qualflow.qualtrics.models._base import ApiModel, AwareUtcDatetime, RequestModel

__all__ = ["ExportFormat", "ExportOptions", "ExportProgress", "ExportStatus"]

ExportFormat = Literal["csv", "tsv", "json", "ndjson", "spss", "xml"]
ExportStatus = Literal["inProgress", "complete", "failed"]

SurveyMetadataId = Literal[
    "startDate",
    "endDate",
    "status",
    "ipAddress",
    "progress",
    "duration",
    "finished",
    "recordedDate",
    "_recordId",
    "locationLatitude",
    "locationLongitude",
    "recipientLastName",
    "recipientFirstName",
    "recipientEmail",
    "externalReference",
    "distributionChannel",
]


class ExportOptions(RequestModel):
    """Body of ``POST /surveys/{id}/export-responses``: every documented field.

    Dates filter on ``recordedDate`` (or on the last-modified date with
    ``sort_by_last_modified_date``); ``start_date`` is inclusive and ``end_date`` exclusive.
    Incremental exports: set ``allow_continuation=True`` on the first export, then pass the
    ``continuation_token`` it returned to get only what was recorded since.
    """

    format: ExportFormat = "csv"
    compress: bool | None = None
    use_labels: bool | None = None
    include_label_columns: bool | None = None
    start_date: AwareUtcDatetime | None = None
    end_date: AwareUtcDatetime | None = None
    time_zone: str | None = None
    limit: int | None = Field(default=None, ge=1)
    question_ids: list[str] | None = None
    embedded_data_ids: list[str] | None = None
    survey_metadata_ids: list[SurveyMetadataId] | None = None
    seen_unanswered_recode: int | None = None
    multiselect_seen_unanswered_recode: int | None = None
    include_display_order: bool | None = None
    format_decimal_as_comma: bool | None = None
    breakout_sets: bool | None = None
    export_responses_in_progress: bool | None = None
    filter_id: str | None = None
    sort_by_last_modified_date: bool | None = None
    allow_continuation: bool | None = None
    continuation_token: str | None = None
    newline_replacement: str | None = None

    @model_validator(mode="after")
    def _check_combinations(self) -> Self:
        if self.use_labels and self.include_label_columns:
            raise ValueError("use_labels and include_label_columns cannot be combined")
        if self.start_date and self.end_date and self.start_date >= self.end_date:
            raise ValueError("start_date must be before end_date (end_date is exclusive)")
        if self.filter_id and (self.allow_continuation or self.continuation_token):
            raise ValueError("incremental exports (continuation) cannot use filter_id")
        if self.filter_id and self.sort_by_last_modified_date:
            raise ValueError("sort_by_last_modified_date cannot be combined with filter_id")
        if self.newline_replacement is not None and self.format not in ("csv", "tsv"):
            raise ValueError("newline_replacement only applies to csv and tsv exports")
        return self

    def to_body(self) -> dict[str, object]:
        body = super().to_body()
        body["format"] = self.format  # required by Qualtrics even when left at its default
        return body

    @property
    def compressed(self) -> bool:
        """Whether the downloaded file will be a ZIP (Qualtrics compresses unless told not to)."""
        return self.compress is not False


class ExportProgress(ApiModel):
    """A running export: ``status`` is ``inProgress`` until ``complete`` (with ``file_id``)."""

    progress_id: str | None = None
    percent_complete: float = 0.0
    status: ExportStatus | str = "inProgress"
    file_id: str | None = None
    continuation_token: str | None = None

    @property
    def is_complete(self) -> bool:
        return self.status == "complete"

    @property
    def is_failed(self) -> bool:
        return self.status == "failed"
