"""``/API/v3``: directories, contacts, mailing lists, users, groups, distributions, sharing."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from qualflow.sandbox import errors, ids
from qualflow.sandbox.directory import iso_z
from qualflow.sandbox.errors import bad_request, ok, ok_meta
from qualflow.sandbox.http import (
    Routes,
    caller,
    json_object,
    offset_page,
    optional_str,
    origin,
    require_str,
    skip_token_page,
    state_of,
)
from qualflow.sandbox.state import User

router = Routes()


def _store(request: Request) -> Any:
    return state_of(request).directory


def _page_size(request: Request) -> int:
    return state_of(request).config.page_size


# -- directories, contacts, mailing lists ------------------------------------------------


@router.get("/directories")
async def list_directories(request: Request) -> JSONResponse:
    return ok(skip_token_page(request, _store(request).list_directories(), _page_size(request)))


@router.get("/directories/{directory_id}/contacts")
async def list_contacts(request: Request, directory_id: str) -> JSONResponse:
    items = _store(request).list_contacts(directory_id)
    return ok(skip_token_page(request, items, _page_size(request)))


@router.post("/directories/{directory_id}/contacts")
async def create_contact(request: Request, directory_id: str) -> JSONResponse:
    body = await json_object(request)
    return ok({"id": _store(request).create_contact(directory_id, body)})


@router.get("/directories/{directory_id}/contacts/{contact_id}")
async def get_contact(request: Request, directory_id: str, contact_id: str) -> JSONResponse:
    return ok(_store(request).get_contact(directory_id, contact_id))


@router.put("/directories/{directory_id}/contacts/{contact_id}")
async def update_contact(request: Request, directory_id: str, contact_id: str) -> JSONResponse:
    body = await json_object(request)
    _store(request).update_contact(directory_id, contact_id, body)
    return ok_meta()


@router.delete("/directories/{directory_id}/contacts/{contact_id}")
async def delete_contact(request: Request, directory_id: str, contact_id: str) -> JSONResponse:
    _store(request).delete_contact(directory_id, contact_id)
    return ok_meta()


@router.get("/directories/{directory_id}/mailinglists")
async def list_mailing_lists(request: Request, directory_id: str) -> JSONResponse:
    items = _store(request).list_mailing_lists(directory_id)
    return ok(skip_token_page(request, items, _page_size(request)))


@router.post("/directories/{directory_id}/mailinglists")
async def create_mailing_list(request: Request, directory_id: str) -> JSONResponse:
    body = await json_object(request)
    name = require_str(body, "name")
    owner = optional_str(body, "ownerId") or caller(request).id
    return ok({"id": _store(request).create_mailing_list(directory_id, name, owner)})


@router.get("/directories/{directory_id}/mailinglists/{mailing_list_id}")
async def get_mailing_list(
    request: Request, directory_id: str, mailing_list_id: str
) -> JSONResponse:
    return ok(_store(request).get_mailing_list(directory_id, mailing_list_id))


@router.put("/directories/{directory_id}/mailinglists/{mailing_list_id}")
async def rename_mailing_list(
    request: Request, directory_id: str, mailing_list_id: str
) -> JSONResponse:
    body = await json_object(request)
    _store(request).rename_mailing_list(directory_id, mailing_list_id, require_str(body, "name"))
    return ok_meta()


@router.delete("/directories/{directory_id}/mailinglists/{mailing_list_id}")
async def delete_mailing_list(
    request: Request, directory_id: str, mailing_list_id: str
) -> JSONResponse:
    _store(request).delete_mailing_list(directory_id, mailing_list_id)
    return ok_meta()


@router.get("/directories/{directory_id}/mailinglists/{mailing_list_id}/contacts")
async def list_members(request: Request, directory_id: str, mailing_list_id: str) -> JSONResponse:
    items = _store(request).list_members(directory_id, mailing_list_id)
    return ok(skip_token_page(request, items, _page_size(request)))


@router.post("/directories/{directory_id}/mailinglists/{mailing_list_id}/contacts")
async def add_member(request: Request, directory_id: str, mailing_list_id: str) -> JSONResponse:
    body = await json_object(request)
    cid, lookup = _store(request).add_member(directory_id, mailing_list_id, body)
    return ok({"id": cid, "contactLookupId": lookup})


@router.delete("/directories/{directory_id}/mailinglists/{mailing_list_id}/contacts/{contact_id}")
async def remove_member(
    request: Request, directory_id: str, mailing_list_id: str, contact_id: str
) -> JSONResponse:
    _store(request).remove_member(directory_id, mailing_list_id, contact_id)
    return ok_meta()


# -- users -----------------------------------------------------------------------------------


@router.get("/users")
async def list_users(request: Request) -> JSONResponse:
    state = state_of(request)
    with state.lock:
        items = [u.to_api() for u in state.users.values()]
    return ok(offset_page(request, items, _page_size(request)))


@router.get("/users/{user_id}")
async def get_user(request: Request, user_id: str) -> JSONResponse:
    state = state_of(request)
    with state.lock:
        return ok(state.get_user(user_id).to_api())


_USER_FIELDS = {
    "username": "username",
    "firstName": "first_name",
    "lastName": "last_name",
    "email": "email",
    "userType": "account_type",
    "divisionId": "division_id",
    "language": "language",
    "timeZone": "time_zone",
    "accountStatus": "account_status",
}


def _user_fields(body: dict[str, Any], *, create: bool) -> dict[str, Any]:
    allowed = set(_USER_FIELDS) | {"password", "accountExpirationDate"}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise bad_request(f"Invalid request: unknown user field(s) {', '.join(unknown)}.")
    if create:
        for name in ("username", "password", "firstName", "lastName", "userType", "email"):
            require_str(body, name)
    out: dict[str, Any] = {}
    for key, attr in _USER_FIELDS.items():
        if key in body:
            value = body[key]
            if value is not None and not isinstance(value, str):
                raise errors.invalid_param(key, "expected a string")
            out[attr] = value
    if "account_type" in out and not str(out["account_type"]).startswith("UT_"):
        raise errors.invalid_param("userType", "expected a user type id (UT_…)")
    if out.get("email") is not None and "@" not in out["email"]:
        raise errors.invalid_param("email", "expected an email address")
    if body.get("accountExpirationDate") is not None:
        iso_z(body["accountExpirationDate"], "accountExpirationDate")
    return out


@router.post("/users")
async def create_user(request: Request) -> JSONResponse:
    state = state_of(request)
    body = await json_object(request)
    fields = _user_fields(body, create=True)
    with state.lock:
        if any(u.username == fields["username"] for u in state.users.values()):
            raise errors.invalid_param("username", f"{fields['username']!r} is already taken")
        user = User(id=ids.user_id(), creation_date=state.now_iso(), **fields)
        # The password is accepted and discarded: nobody signs in to the sandbox UI.
        state.users[user.id] = user
    state.mark_dirty()
    return ok({"id": user.id})


@router.put("/users/{user_id}")
async def update_user(request: Request, user_id: str) -> JSONResponse:
    state = state_of(request)
    body = await json_object(request)
    fields = _user_fields(body, create=False)
    with state.lock:
        user = state.get_user(user_id)
        for attr, value in fields.items():
            if value is not None:
                setattr(user, attr, value)
    state.mark_dirty()
    return ok_meta()


@router.delete("/users/{user_id}")
async def delete_user(request: Request, user_id: str) -> JSONResponse:
    state = state_of(request)
    if user_id == caller(request).id:
        raise bad_request("Invalid request: you cannot delete the user you are signed in as.")
    with state.lock:
        user = state.get_user(user_id)
        if user.api_token:
            state.tokens.pop(user.api_token, None)
        del state.users[user_id]
    state.mark_dirty()
    return ok_meta()


@router.get("/users/{user_id}/apitoken")
async def get_api_token(request: Request, user_id: str) -> JSONResponse:
    state = state_of(request)
    with state.lock:
        user = state.get_user(user_id)
        if not user.api_token:
            raise bad_request(f"User {user_id} has no API token; create one with POST.")
        return ok({"apiToken": user.api_token})


@router.post("/users/{user_id}/apitoken")
async def create_api_token(request: Request, user_id: str) -> JSONResponse:
    return ok({"apiToken": state_of(request).new_api_token(user_id)})


# -- groups ----------------------------------------------------------------------------------


@router.get("/groups")
async def list_groups(request: Request) -> JSONResponse:
    store = _store(request)
    with state_of(request).lock:
        items = [store.group_out(g) for g in store.groups.values()]
    return ok(offset_page(request, items, _page_size(request)))


@router.post("/groups")
async def create_group(request: Request) -> JSONResponse:
    body = await json_object(request)
    return ok({"id": _store(request).create_group(body, caller(request).id)})


@router.get("/groups/{group_id}")
async def get_group(request: Request, group_id: str) -> JSONResponse:
    store = _store(request)
    with state_of(request).lock:
        return ok(store.group_out(store.group(group_id)))


@router.put("/groups/{group_id}")
async def update_group(request: Request, group_id: str) -> JSONResponse:
    body = await json_object(request)
    _store(request).update_group(group_id, body)
    return ok_meta()


@router.delete("/groups/{group_id}")
async def delete_group(request: Request, group_id: str) -> JSONResponse:
    _store(request).delete_group(group_id)
    return ok_meta()


@router.get("/groups/{group_id}/members")
async def list_group_members(request: Request, group_id: str) -> JSONResponse:
    state = state_of(request)
    store = _store(request)
    with state.lock:
        members = [
            state.users[u].to_api() for u in store.group(group_id)["members"] if u in state.users
        ]
    return ok(offset_page(request, members, _page_size(request)))


@router.post("/groups/{group_id}/members")
async def add_group_member(request: Request, group_id: str) -> JSONResponse:
    body = await json_object(request)
    _store(request).add_group_member(group_id, body.get("userId"))
    return ok_meta()


@router.delete("/groups/{group_id}/members/{user_id}")
async def remove_group_member(request: Request, group_id: str, user_id: str) -> JSONResponse:
    _store(request).remove_group_member(group_id, user_id)
    return ok_meta()


# -- distributions ---------------------------------------------------------------------------


def _survey_param(request: Request) -> str:
    survey_id = request.query_params.get("surveyId")
    if not survey_id:
        raise errors.invalid_param("surveyId", "the surveyId query parameter is required")
    return survey_id


def _base_url(request: Request) -> str:
    return origin(request)


@router.get("/distributions")
async def list_distributions(request: Request) -> JSONResponse:
    items = _store(request).list_distributions(_survey_param(request))
    return ok(offset_page(request, items, _page_size(request)))


@router.post("/distributions")
async def create_distribution(request: Request) -> JSONResponse:
    body = await json_object(request)
    did = _store(request).create_distribution(body, caller(request).id, _base_url(request))
    return ok({"id": did})


@router.get("/distributions/{distribution_id}")
async def get_distribution(request: Request, distribution_id: str) -> JSONResponse:
    store = _store(request)
    survey_id = _survey_param(request)
    with state_of(request).lock:
        return ok(store.distribution_out(store.distribution(distribution_id, survey_id)))


@router.delete("/distributions/{distribution_id}")
async def delete_distribution(request: Request, distribution_id: str) -> JSONResponse:
    _store(request).delete_distribution(distribution_id)
    return ok_meta()


@router.get("/distributions/{distribution_id}/links")
async def distribution_links(request: Request, distribution_id: str) -> JSONResponse:
    items = _store(request).links(distribution_id, _survey_param(request))
    return ok(skip_token_page(request, items, _page_size(request)))


@router.get("/distributions/{distribution_id}/history")
async def distribution_history(request: Request, distribution_id: str) -> JSONResponse:
    items = _store(request).history(distribution_id)
    return ok(skip_token_page(request, items, _page_size(request)))


@router.post("/distributions/{distribution_id}/reminders")
async def send_reminder(request: Request, distribution_id: str) -> JSONResponse:
    body = await json_object(request)
    child = _store(request).follow_up(distribution_id, "Reminder", body, caller(request).id)
    return ok({"distributionId": child})


@router.post("/distributions/{distribution_id}/thankyous")
async def send_thank_you(request: Request, distribution_id: str) -> JSONResponse:
    body = await json_object(request)
    child = _store(request).follow_up(distribution_id, "ThankYou", body, caller(request).id)
    return ok({"distributionId": child})


# -- collaborations --------------------------------------------------------------------------


@router.post("/surveys/{survey_id}/permissions/collaborations")
async def share_survey(request: Request, survey_id: str) -> JSONResponse:
    body = await json_object(request)
    _store(request).add_collaboration(survey_id, body)
    return ok_meta()
