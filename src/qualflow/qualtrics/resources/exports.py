"""Response exports: start a job, poll it, and stream the file to disk.

The file is never held in memory: it is streamed in chunks to ``<dest>.part`` and renamed to
``dest`` only when complete, so a failed download never leaves a truncated file behind.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypedDict, Unpack

from qualflow.qualtrics._core import ApiCall, Envelope, nothing, parse_model, path_segment
from qualflow.qualtrics.errors import ExportFailed, ExportTimeout, UnexpectedResponse
from qualflow.qualtrics.models import ExportFormat, ExportOptions, ExportProgress
from qualflow.qualtrics.resources._resource import AsyncResource, SyncResource

__all__ = [
    "AsyncExports",
    "CompletedExport",
    "ExportEvent",
    "ExportOptionFields",
    "Exports",
    "ProgressCallback",
]

DEFAULT_TIMEOUT = 3600.0
_CHUNK = 1 << 20


class ExportOptionFields(TypedDict, total=False):
    """Keyword form of :class:`ExportOptions` (same names, same meaning)."""

    compress: bool
    use_labels: bool
    include_label_columns: bool
    start_date: datetime
    end_date: datetime
    time_zone: str
    limit: int
    question_ids: list[str]
    embedded_data_ids: list[str]
    survey_metadata_ids: list[str]
    seen_unanswered_recode: int
    multiselect_seen_unanswered_recode: int
    include_display_order: bool
    format_decimal_as_comma: bool
    breakout_sets: bool
    export_responses_in_progress: bool
    filter_id: str
    sort_by_last_modified_date: bool
    allow_continuation: bool
    continuation_token: str
    newline_replacement: str


@dataclass(frozen=True)
class ExportEvent:
    """Progress of :meth:`Exports.run` / ``export_responses``, for progress bars.

    ``stage`` moves through ``started`` → ``polling`` (repeated) → ``downloading`` (repeated,
    with ``bytes_downloaded`` / ``total_bytes``) → ``downloaded``.
    """

    stage: Literal["started", "polling", "downloading", "downloaded"]
    progress: ExportProgress | None = None
    bytes_downloaded: int = 0
    total_bytes: int | None = None

    @property
    def percent_complete(self) -> float:
        return self.progress.percent_complete if self.progress else 0.0


ProgressCallback = Callable[[ExportEvent], None]


@dataclass(frozen=True)
class CompletedExport:
    """A finished, downloaded export. ``continuation_token`` feeds the next incremental one."""

    survey_id: str
    path: Path
    format: ExportFormat
    compressed: bool
    progress_id: str
    file_id: str
    continuation_token: str | None
    size: int


def build_options(
    options: ExportOptions | None, format: ExportFormat | None, fields: ExportOptionFields
) -> ExportOptions:
    """Merge an :class:`ExportOptions`, a ``format`` and keyword fields into one model."""
    data: dict[str, Any] = options.model_dump(exclude_unset=True) if options is not None else {}
    data.update(fields)
    if format is not None:
        data["format"] = format
    return ExportOptions.model_validate(data)


def _progress(progress_id: str | None) -> Callable[[Envelope], ExportProgress]:
    def parse(envelope: Envelope) -> ExportProgress:
        progress = parse_model(ExportProgress, envelope.result, envelope)
        if progress.progress_id is None and progress_id is not None:
            progress = progress.model_copy(update={"progress_id": progress_id})
        if progress.progress_id is None:
            raise UnexpectedResponse("starting the export returned no progressId")
        return progress

    return parse


class _Calls:
    @staticmethod
    def base(survey_id: str) -> str:
        return f"/surveys/{path_segment(survey_id, 'survey_id')}/export-responses"

    @staticmethod
    def start(survey_id: str, options: ExportOptions) -> ApiCall[ExportProgress]:
        return ApiCall(
            "POST",
            _Calls.base(survey_id),
            _progress(None),
            json=options.to_body(),
            # Starting an export changes nothing in the account; a duplicate job is harmless.
            safe_to_repeat=True,
        )

    @staticmethod
    def status(survey_id: str, progress_id: str) -> ApiCall[ExportProgress]:
        pid = path_segment(progress_id, "progress_id")
        return ApiCall("GET", f"{_Calls.base(survey_id)}/{pid}", _progress(progress_id))

    @staticmethod
    def file(survey_id: str, file_id: str) -> ApiCall[None]:
        fid = path_segment(file_id, "file_id")
        return ApiCall(
            "GET",
            f"{_Calls.base(survey_id)}/{fid}/file",
            nothing,
            headers={"Accept": "application/octet-stream, application/zip, */*"},
        )


def _checked(progress: ExportProgress, survey_id: str) -> ExportProgress:
    if progress.is_failed:
        raise ExportFailed(
            f"the export {progress.progress_id} of survey {survey_id} failed on Qualtrics' side",
            progress_id=progress.progress_id,
        )
    if progress.is_complete and not progress.file_id:
        raise UnexpectedResponse(f"export {progress.progress_id} is complete but has no fileId")
    return progress


class _Poller:
    """Polling schedule: start at ``interval``, grow 1.5x up to ``max_interval``, stop at the
    deadline. Qualtrics asks for at least a second between polls."""

    def __init__(self, interval: float, max_interval: float, timeout: float | None) -> None:
        # Written so that NaN fails too: a NaN deadline never passes.
        if not (interval > 0 and max_interval > 0):
            raise ValueError("poll intervals must be positive")
        if timeout is not None and not timeout > 0:
            raise ValueError("timeout must be positive (or None for no deadline)")
        self.interval = interval
        self.max_interval = max(max_interval, interval)
        self.deadline = None if timeout is None else time.monotonic() + timeout

    def next_wait(self, progress: ExportProgress) -> float:
        wait = self.interval
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise ExportTimeout(
                    f"export {progress.progress_id} still {progress.status} "
                    f"({progress.percent_complete:.0f}%) when the deadline passed",
                    progress_id=progress.progress_id,
                )
            wait = min(wait, remaining)
        self.interval = min(self.max_interval, self.interval * 1.5)
        return wait


def _extension(options: ExportOptions) -> str:
    if options.compressed:
        return ".zip"
    return {"spss": ".sav"}.get(options.format, f".{options.format}")


def _destination(dest: str | os.PathLike[str] | None, survey_id: str, ext: str) -> Path:
    if dest is None:
        fd, name = tempfile.mkstemp(prefix=f"qualtrics-{survey_id}-", suffix=ext)
        os.close(fd)
        return Path(name)
    path = Path(dest)
    if path.is_dir():
        return path / f"{survey_id}{ext}"
    return path


@contextmanager
def _failed_download(
    path: Path, survey_id: str, done: ExportProgress, *, made_here: bool
) -> Iterator[None]:
    """What a download that fails after the job completed leaves behind: ``path`` is deleted
    if the client created it (the caller never got the name of that temporary file, so nobody
    else could remove it), and the error keeps what the job issued (``continuation_token`` and
    ``file_id`` attributes, and a note), so the file can be fetched again with ``download``
    and the next export resume after it."""
    try:
        yield
    except BaseException as exc:
        if made_here:
            path.unlink(missing_ok=True)
        if done.continuation_token:
            exc.continuation_token = done.continuation_token  # type: ignore[attr-defined]
            exc.file_id = done.file_id  # type: ignore[attr-defined]
            exc.add_note(
                f"export of {survey_id} completed (file {done.file_id}) and issued continuation "
                f"token {done.continuation_token}; it resumes after this export's responses, so "
                "use it only once this file is downloaded"
            )
        raise


def _part(path: Path) -> Path:
    return path.with_name(path.name + ".part")


def _notify(on_progress: ProgressCallback | None, event: ExportEvent) -> None:
    if on_progress is not None:
        on_progress(event)


class Exports(SyncResource):
    """Response exports: ``client.exports`` (most callers want ``client.export_responses``)."""

    def start(
        self,
        survey_id: str,
        options: ExportOptions | None = None,
        *,
        format: ExportFormat | None = None,
        **fields: Unpack[ExportOptionFields],
    ) -> ExportProgress:
        """Start an export job; returns its progress (``progress_id``)."""
        opts = build_options(options, format, fields)
        return self._run(_Calls.start(survey_id, opts))

    def status(self, survey_id: str, progress_id: str) -> ExportProgress:
        """Where the job is: ``status``, ``percent_complete``, and ``file_id`` once complete."""
        return self._run(_Calls.status(survey_id, progress_id))

    def wait(
        self,
        survey_id: str,
        progress_id: str,
        *,
        poll_interval: float = 1.0,
        max_poll_interval: float = 5.0,
        timeout: float | None = DEFAULT_TIMEOUT,
        on_progress: ProgressCallback | None = None,
    ) -> ExportProgress:
        """Poll until the job is complete; raises :class:`ExportFailed` if it fails and
        :class:`ExportTimeout` if ``timeout`` seconds pass first."""
        poller = _Poller(poll_interval, max_poll_interval, timeout)
        while True:
            progress = _checked(self.status(survey_id, progress_id), survey_id)
            _notify(on_progress, ExportEvent("polling", progress))
            if progress.is_complete:
                return progress
            self._client._sleep(poller.next_wait(progress))

    def download(
        self,
        survey_id: str,
        file_id: str,
        dest: str | os.PathLike[str],
        *,
        on_progress: ProgressCallback | None = None,
    ) -> int:
        """Stream the export file to ``dest``; returns its size in bytes."""
        path = Path(dest)
        part = _part(path)

        def on_chunk(done: int, total: int | None) -> None:
            _notify(on_progress, ExportEvent("downloading", None, done, total))

        try:
            with part.open("wb") as sink:
                size = self._client._download(_Calls.file(survey_id, file_id), sink, on_chunk)
            part.replace(path)
        finally:
            part.unlink(missing_ok=True)
        return size

    def run(
        self,
        survey_id: str,
        options: ExportOptions | None = None,
        *,
        dest: str | os.PathLike[str] | None = None,
        poll_interval: float = 1.0,
        max_poll_interval: float = 5.0,
        timeout: float | None = DEFAULT_TIMEOUT,
        on_progress: ProgressCallback | None = None,
    ) -> CompletedExport:
        """Start, wait for and download an export; the file lands at ``dest`` (a file path
        or a directory; a new temporary file when ``None`` — the caller then owns it)."""
        opts = options or ExportOptions()
        started = self._run(_Calls.start(survey_id, opts))
        _notify(on_progress, ExportEvent("started", started))
        assert started.progress_id is not None
        done = self.wait(
            survey_id,
            started.progress_id,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
            timeout=timeout,
            on_progress=on_progress,
        )
        assert done.file_id is not None
        path = _destination(dest, survey_id, _extension(opts))
        with _failed_download(path, survey_id, done, made_here=dest is None):
            size = self.download(survey_id, done.file_id, path, on_progress=on_progress)
        _notify(on_progress, ExportEvent("downloaded", done, size, size))
        return CompletedExport(
            survey_id=survey_id,
            path=path,
            format=opts.format,
            compressed=opts.compressed,
            progress_id=started.progress_id,
            file_id=done.file_id,
            continuation_token=done.continuation_token or started.continuation_token,
            size=size,
        )


class AsyncExports(AsyncResource):
    """Async counterpart of :class:`Exports`."""

    async def start(
        self,
        survey_id: str,
        options: ExportOptions | None = None,
        *,
        format: ExportFormat | None = None,
        **fields: Unpack[ExportOptionFields],
    ) -> ExportProgress:
        opts = build_options(options, format, fields)
        return await self._run(_Calls.start(survey_id, opts))

    async def status(self, survey_id: str, progress_id: str) -> ExportProgress:
        return await self._run(_Calls.status(survey_id, progress_id))

    async def wait(
        self,
        survey_id: str,
        progress_id: str,
        *,
        poll_interval: float = 1.0,
        max_poll_interval: float = 5.0,
        # A polling deadline that raises ExportTimeout (with the progress id), as in Exports.
        timeout: float | None = DEFAULT_TIMEOUT,  # noqa: ASYNC109
        on_progress: ProgressCallback | None = None,
    ) -> ExportProgress:
        poller = _Poller(poll_interval, max_poll_interval, timeout)
        while True:
            progress = _checked(await self.status(survey_id, progress_id), survey_id)
            _notify(on_progress, ExportEvent("polling", progress))
            if progress.is_complete:
                return progress
            await self._client._sleep(poller.next_wait(progress))

    async def download(
        self,
        survey_id: str,
        file_id: str,
        dest: str | os.PathLike[str],
        *,
        on_progress: ProgressCallback | None = None,
    ) -> int:
        path = Path(dest)
        part = _part(path)

        def on_chunk(done: int, total: int | None) -> None:
            _notify(on_progress, ExportEvent("downloading", None, done, total))

        try:
            # Local disk writes are fast and bounded by the chunk size: doing them inline
            # costs less than a thread hop per megabyte.
            with part.open("wb") as sink:
                size = await self._client._download(_Calls.file(survey_id, file_id), sink, on_chunk)
            part.replace(path)
        finally:
            part.unlink(missing_ok=True)
        return size

    async def run(
        self,
        survey_id: str,
        options: ExportOptions | None = None,
        *,
        dest: str | os.PathLike[str] | None = None,
        poll_interval: float = 1.0,
        max_poll_interval: float = 5.0,
        # A polling deadline that raises ExportTimeout (with the progress id), as in Exports.
        timeout: float | None = DEFAULT_TIMEOUT,  # noqa: ASYNC109
        on_progress: ProgressCallback | None = None,
    ) -> CompletedExport:
        opts = options or ExportOptions()
        started = await self._run(_Calls.start(survey_id, opts))
        _notify(on_progress, ExportEvent("started", started))
        assert started.progress_id is not None
        done = await self.wait(
            survey_id,
            started.progress_id,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
            timeout=timeout,
            on_progress=on_progress,
        )
        assert done.file_id is not None
        path = _destination(dest, survey_id, _extension(opts))
        with _failed_download(path, survey_id, done, made_here=dest is None):
            size = await self.download(survey_id, done.file_id, path, on_progress=on_progress)
        _notify(on_progress, ExportEvent("downloaded", done, size, size))
        return CompletedExport(
            survey_id=survey_id,
            path=path,
            format=opts.format,
            compressed=opts.compressed,
            progress_id=started.progress_id,
            file_id=done.file_id,
            continuation_token=done.continuation_token or started.continuation_token,
            size=size,
        )
