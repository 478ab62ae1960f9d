"""``/API/v3``: whoami, surveys, survey-definitions, single responses and response exports."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from qualflow.sandbox import errors
from qualflow.sandbox.errors import bad_request, not_found, ok, ok_meta
from qualflow.sandbox.export import (
    STATUS_LABELS,
    SeenModel,
    media_type,
    parse_iso,
    stream_file,
)
from qualflow.sandbox.http import (
    Routes,
    caller,
    json_body,
    json_object,
    offset_page,
    optional_bool,
    optional_str,
    origin,
    parse_json,
    require_str,
    state_of,
)
from qualflow.sandbox.state import SandboxState, iso

router = Routes()

_PROJECT_CATEGORIES = ("CORE", "CX", "EX", "BX", "PX")


@router.get("/whoami")
async def whoami(request: Request) -> JSONResponse:
    state = state_of(request)
    return ok(caller(request).whoami(state.config.brand_id, state.config.datacenter))


# -- surveys -------------------------------------------------------------------------------


@router.get("/surveys")
async def list_surveys(request: Request) -> JSONResponse:
    state = state_of(request)
    with state.lock:
        items = [s.list_element() for s in state.surveys_seen_by(caller(request).id)]
    return ok(offset_page(request, items, state.config.page_size))


@router.post("/surveys")
async def create_survey(request: Request) -> JSONResponse:
    """Import a QSF (multipart ``name`` + ``file``) or copy (``X-COPY-SOURCE`` header)."""
    state = state_of(request)
    user = caller(request)
    source = request.headers.get("x-copy-source")
    if source:
        owner = request.headers.get("x-copy-destination-owner") or user.id
        _check_owner(state, owner)
        body = await json_object(request, required=False)
        name = optional_str(body, "projectName")
        state.survey_seen_by(user.id, source)
        survey = state.copy_survey(source, name=name, owner_id=owner)
        return ok({"id": survey.id})
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise bad_request(
            "Invalid request: import a survey with multipart/form-data (parts name and file) "
            "or copy one with the X-COPY-SOURCE header."
        )
    form = await request.form()
    try:
        raw_name = form.get("name")
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise errors.invalid_param("file", "a QSF file part is required")
        if raw_name is not None and not isinstance(raw_name, str):
            raise errors.invalid_param("name", "expected text")
        name = raw_name
        part_type = (upload.content_type or "").lower()
        if part_type.endswith(("survey.txt", "survey.doc")):
            raise bad_request(
                f"Import of {part_type} files is not supported by the sandbox; upload a QSF file."
            )
        raw = await upload.read()
    finally:
        await form.close()
    qsf = parse_json(raw, "QSF file")
    survey = state.import_qsf(qsf, name=name or None, owner_id=user.id)
    return ok({"id": survey.id})


def _check_owner(state: SandboxState, owner: str, name: str = "X-COPY-DESTINATION-OWNER") -> None:
    if owner not in state.users:
        raise errors.invalid_param(name, f"unknown user {owner}")


@router.get("/surveys/{survey_id}")
async def get_survey(request: Request, survey_id: str) -> JSONResponse:
    state = state_of(request)
    with state.lock:
        survey = state.get_survey(survey_id)
        result = survey.to_legacy(state.response_count(survey_id))
    return ok(result)


@router.put("/surveys/{survey_id}")
async def update_survey(request: Request, survey_id: str) -> JSONResponse:
    state = state_of(request)
    body = await json_object(request)
    unknown = set(body) - {"name", "isActive", "expiration", "ownerId"}
    if unknown:
        raise bad_request(f"Invalid request: unknown field(s) {', '.join(sorted(unknown))}.")
    name = optional_str(body, "name")
    if name is not None and not name.strip():
        raise errors.invalid_param("name", "must not be empty")
    is_active = optional_bool(body, "isActive")
    expiration = body.get("expiration")
    exp: dict[str, str | None] | None = None
    if expiration is not None:
        if not isinstance(expiration, dict) or set(expiration) - {"startDate", "endDate"}:
            raise errors.invalid_param("expiration", "expected {startDate, endDate}")
        exp = {}
        for key in ("startDate", "endDate"):
            if key in expiration:
                value = expiration[key]
                exp[key] = None if value is None else iso(parse_iso(value, f"expiration.{key}"))
    owner = optional_str(body, "ownerId")
    with state.lock:
        survey = state.get_survey(survey_id)
        if owner is not None:
            _check_owner(state, owner, "ownerId")
            survey.owner_id = owner
    state.update_survey(survey_id, name=name, is_active=is_active, expiration=exp)
    return ok_meta()


@router.delete("/surveys/{survey_id}")
async def delete_survey(request: Request, survey_id: str) -> JSONResponse:
    state_of(request).delete_survey(survey_id)
    return ok_meta()


# -- survey definitions -----------------------------------------------------------------


@router.post("/survey-definitions")
async def create_definition(request: Request) -> JSONResponse:
    state = state_of(request)
    body = await json_object(request)
    name = require_str(body, "SurveyName")
    language = body.get("Language", "EN")
    if not isinstance(language, str) or not language:
        raise errors.invalid_param("Language", "expected a language code")
    category = body.get("ProjectCategory", "CORE")
    if category not in _PROJECT_CATEGORIES:
        raise errors.invalid_param(
            "ProjectCategory", f"expected one of {', '.join(_PROJECT_CATEGORIES)}"
        )
    survey = state.new_survey(
        name, owner_id=caller(request).id, language=language.upper(), project_category=category
    )
    return ok({"SurveyID": survey.id, "DefaultBlockID": survey.default_block_id})


def _brand_base_url(request: Request) -> str:
    return origin(request)


@router.get("/survey-definitions/{survey_id}")
async def get_definition(request: Request, survey_id: str) -> JSONResponse:
    state = state_of(request)
    fmt = request.query_params.get("format")
    if fmt not in (None, "qsf"):
        raise errors.invalid_param("format", "the only supported value is qsf")
    with state.lock:
        survey = state.get_survey(survey_id)
        result = survey.to_qsf() if fmt == "qsf" else survey.to_definition(_brand_base_url(request))
    return ok(result)


@router.delete("/survey-definitions/{survey_id}")
async def delete_definition(request: Request, survey_id: str) -> JSONResponse:
    state = state_of(request)
    state.delete_survey(survey_id)
    return ok({"DeletedDate": state.now_iso()})


@router.get("/survey-definitions/{survey_id}/metadata")
async def get_metadata(request: Request, survey_id: str) -> JSONResponse:
    state = state_of(request)
    with state.lock:
        return ok(state.get_survey(survey_id).to_metadata())


def _mysql_to_iso(value: Any, name: str) -> str | None:
    if value in (None, "", "0000-00-00 00:00:00"):
        return None
    if not isinstance(value, str):
        raise errors.invalid_param(name, "expected YYYY-MM-DD HH:MM:SS")
    try:
        parsed = datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise errors.invalid_param(name, f"{value!r} is not YYYY-MM-DD HH:MM:SS") from None
    return parsed.strftime("%Y-%m-%dT%H:%M:%SZ")


@router.put("/survey-definitions/{survey_id}/metadata")
async def put_metadata(request: Request, survey_id: str) -> JSONResponse:
    state = state_of(request)
    body = await json_object(request)
    allowed = {
        "SurveyName",
        "SurveyDescription",
        "SurveyStatus",
        "SurveyStartDate",
        "SurveyExpirationDate",
    }
    unknown = set(body) - allowed
    if unknown:
        raise bad_request(f"Invalid request: unknown field(s) {', '.join(sorted(unknown))}.")
    name = optional_str(body, "SurveyName")
    if name is not None and not name.strip():
        raise errors.invalid_param("SurveyName", "must not be empty")
    description = optional_str(body, "SurveyDescription")
    status = body.get("SurveyStatus")
    if status is not None and status not in ("Active", "Inactive"):
        raise errors.invalid_param("SurveyStatus", "expected Active or Inactive")
    expiration: dict[str, str | None] = {}
    if "SurveyStartDate" in body:
        expiration["startDate"] = _mysql_to_iso(body["SurveyStartDate"], "SurveyStartDate")
    if "SurveyExpirationDate" in body:
        expiration["endDate"] = _mysql_to_iso(body["SurveyExpirationDate"], "SurveyExpirationDate")
    state.update_survey(
        survey_id,
        name=name,
        description=description,
        is_active=None if status is None else status == "Active",
        expiration=expiration or None,
    )
    return ok_meta()


@router.get("/survey-definitions/{survey_id}/options")
async def get_options(request: Request, survey_id: str) -> JSONResponse:
    state = state_of(request)
    with state.lock:
        return ok(state.get_survey(survey_id).survey_options())


@router.put("/survey-definitions/{survey_id}/options")
async def put_options(request: Request, survey_id: str) -> JSONResponse:
    state = state_of(request)
    body = await json_object(request)
    with state.lock:
        survey = state.get_survey(survey_id)
        survey.options.update(body)
        survey.touch(state.now_iso())
    state.mark_dirty()
    return ok_meta()


@router.get("/survey-definitions/{survey_id}/flow")
async def get_flow(request: Request, survey_id: str) -> JSONResponse:
    state = state_of(request)
    with state.lock:
        return ok(state.get_survey(survey_id).flow_definition())


@router.get("/survey-definitions/{survey_id}/blocks/{block_id}")
async def get_block(request: Request, survey_id: str, block_id: str) -> JSONResponse:
    state = state_of(request)
    with state.lock:
        block = state.get_survey(survey_id).blocks.get(block_id)
        if block is None:
            raise not_found(f"Block {block_id} not found in survey {survey_id}.")
        return ok(block.to_definition())


@router.get("/survey-definitions/{survey_id}/questions")
async def list_questions(request: Request, survey_id: str) -> JSONResponse:
    state = state_of(request)
    with state.lock:
        survey = state.get_survey(survey_id)
        return ok({"elements": [q.to_definition() for q in survey.questions.values()]})


@router.post("/survey-definitions/{survey_id}/questions")
async def create_question(request: Request, survey_id: str) -> JSONResponse:
    state = state_of(request)
    body = await json_object(request)
    qid = state.add_question(survey_id, body, request.query_params.get("blockId"))
    return ok({"QuestionID": qid})


@router.get("/survey-definitions/{survey_id}/questions/{question_id}")
async def get_question(request: Request, survey_id: str, question_id: str) -> JSONResponse:
    state = state_of(request)
    with state.lock:
        question = state.get_survey(survey_id).questions.get(question_id)
        if question is None:
            raise not_found(f"Question {question_id} not found in survey {survey_id}.")
        return ok(question.to_definition())


@router.put("/survey-definitions/{survey_id}/questions/{question_id}")
async def put_question(request: Request, survey_id: str, question_id: str) -> JSONResponse:
    state = state_of(request)
    body = await json_object(request)
    state.replace_question(survey_id, question_id, body)
    return ok_meta()


@router.delete("/survey-definitions/{survey_id}/questions/{question_id}")
async def delete_question(request: Request, survey_id: str, question_id: str) -> JSONResponse:
    state_of(request).delete_question(survey_id, question_id)
    return ok_meta()


# -- single responses ----------------------------------------------------------------------


def response_result(
    state: SandboxState, survey_id: str, values: dict[str, Any], response_id: str
) -> dict[str, Any]:
    """``{responseId, values, labels, displayedFields, displayedValues}`` for one response."""
    survey = state.get_survey(survey_id)
    columns = state.columns(survey)
    labels: dict[str, Any] = {}
    status = values.get("status")
    if isinstance(status, int) and status in STATUS_LABELS:
        labels["status"] = STATUS_LABELS[status]
    if "finished" in values:
        labels["finished"] = "True" if str(values["finished"]) == "1" else "False"
    for key, col in columns.items():
        if key in values:
            label = col.label(values[key])
            if label is not None:
                labels[key] = label
    # What was shown is decided as in exports, so both tell the same story about a response.
    fields: list[str] = []
    displayed_values: dict[str, list[int | str]] = {}
    for q in SeenModel(survey).seen(values):
        for key, _ in q.fields:
            fields.append(key)
            if key in q.displayed_values:
                displayed_values[key] = q.displayed_values[key]
    return {
        "responseId": response_id,
        "values": values,
        "labels": labels,
        "displayedFields": fields,
        "displayedValues": displayed_values,
    }


@router.get("/surveys/{survey_id}/responses/{response_id}")
async def get_response(request: Request, survey_id: str, response_id: str) -> JSONResponse:
    state = state_of(request)
    with state.lock:
        response = state.get_response(survey_id, response_id)
        if response.unavailable_reads > 0 or time.monotonic() < response.available_at:
            response.unavailable_reads = max(response.unavailable_reads - 1, 0)
            return ok(
                {"message": "The Survey Response is not yet available. Please try again later."},
                status=202,
            )
        result = response_result(state, survey_id, response.values, response.id)
    return ok(result)


@router.post("/surveys/{survey_id}/responses")
async def create_response(request: Request, survey_id: str) -> JSONResponse:
    state = state_of(request)
    body = await json_object(request)
    if "values" not in body:
        raise errors.invalid_param("values", "expected an object of response values")
    key = request.headers.get("idempotency-key")
    response = state.record_response(survey_id, body["values"], idempotency_key=key or None)
    return ok({"responseId": response.id})


@router.put("/responses/{response_id}")
async def update_response(request: Request, response_id: str) -> JSONResponse:
    state = state_of(request)
    body = await json_object(request)
    survey_id = require_str(body, "surveyId")
    embedded = body.get("embeddedData")
    if not isinstance(embedded, dict) or not embedded:
        raise errors.invalid_param("embeddedData", "expected a non-empty object")
    reset = optional_bool(body, "resetRecordedDate") or False
    unknown = set(body) - {"surveyId", "embeddedData", "resetRecordedDate"}
    if unknown:
        raise bad_request(
            f"Invalid request: unknown field(s) {', '.join(sorted(unknown))}; "
            "only embeddedData can be updated."
        )
    state.survey_seen_by(caller(request).id, survey_id)
    state.update_response_embedded(response_id, survey_id, embedded, reset_recorded_date=reset)
    return ok_meta()


@router.delete("/surveys/{survey_id}/responses/{response_id}")
async def delete_response(request: Request, survey_id: str, response_id: str) -> JSONResponse:
    decrement = request.query_params.get("decrementQuotas")
    if decrement not in (None, "true", "false"):
        raise errors.invalid_param("decrementQuotas", "expected true or false")
    state_of(request).delete_response(survey_id, response_id)
    return ok_meta()


# -- exports -------------------------------------------------------------------------------


@router.get("/surveys/{survey_id}/filters")
async def list_filters(request: Request, survey_id: str) -> JSONResponse:
    """The survey's saved filters, ``{filterId, filterName, creationDate}`` each."""
    state = state_of(request)
    return ok(offset_page(request, state.list_filters(survey_id), state.config.page_size))


@router.post("/surveys/{survey_id}/export-responses")
async def start_export(request: Request, survey_id: str) -> JSONResponse:
    state = state_of(request)
    body = await json_body(request)
    job = state.start_export(survey_id, body)
    result: dict[str, Any] = {"progressId": job.id, "percentComplete": 0.0, "status": "inProgress"}
    return ok(result)


@router.get("/surveys/{survey_id}/export-responses/{progress_id}")
async def export_progress(request: Request, survey_id: str, progress_id: str) -> JSONResponse:
    return ok(state_of(request).export_progress(survey_id, progress_id))


@router.get("/surveys/{survey_id}/export-responses/{file_id}/file")
async def export_file(request: Request, survey_id: str, file_id: str) -> Response:
    state = state_of(request)
    job = state.export_job_for_file(survey_id, file_id)
    with state.lock:
        survey = state.get_survey(survey_id)
    records = state.export_records(job)
    opts = job.options
    body = stream_file(survey, records, opts)
    ext = "zip" if opts.compress else opts.format
    name = f"{survey_id}.{ext}"
    return StreamingResponse(
        body,
        media_type=media_type(opts.format, opts.compress),
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
