"""Everything the sandbox knows, in memory, thread-safe, optionally persisted to a JSON file.

:class:`SandboxState` is both the store and the domain logic (recording a response, starting an
export, activating a survey ...), so the HTTP layer, the CLI and tests drive the same code. Every
public method takes the state's lock; events (completed responses, survey activation ...) are
handed to listeners (the webhook dispatcher) after the lock is released.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from qualflow.sandbox import ids
from qualflow.sandbox.directory import DirectoryStore
from qualflow.sandbox.errors import ApiError, bad_request, not_found
from qualflow.sandbox.export import LAST_MODIFIED_KEY, ExportOptions, parse_iso
from qualflow.sandbox.faults import FaultInjector
from qualflow.sandbox.filters import ResponseFilter
from qualflow.sandbox.model import Block, ExportColumn, Question, Survey, nps_group
from qualflow.sandbox.survey_options import default_survey_options

log = logging.getLogger(__name__)

#: The largest state file :meth:`SandboxState.load` reads: far beyond any seeded sandbox, and a
#: file that never ends (``/dev/zero``) fails instead of filling memory.
MAX_STATE_BYTES = 512 * 1024 * 1024

STATE_FORMAT_VERSION = 1
# How long a continuation token stays good: Qualtrics keeps one for a week.
CONTINUATION_TTL = 7 * 24 * 3600.0

#: The records every state file has (and of what JSON type), whatever version of the sandbox
#: wrote it.
_REQUIRED_STATE_KEYS: dict[str, type] = {
    "config": dict,
    "users": list,
    "surveys": list,
    "responses": list,
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime, *, millis: bool = False) -> str:
    """``2020-02-20T00:35:40Z`` (or with milliseconds, the recordedDate style)."""
    if dt.tzinfo is not UTC:
        dt = dt.astimezone(UTC)
    base = (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    )
    return f"{base}.{dt.microsecond // 1000:03d}Z" if millis else base + "Z"


@runtime_checkable
class KeptInState(Protocol):
    """A live emulator kept in :attr:`SandboxState.extra` (the Tango double): written to the state
    file as its ``to_json()``, and restored from that record by the emulator itself."""

    def to_json(self) -> dict[str, Any]: ...


@dataclass
class SandboxConfig:
    """Behaviour knobs. Defaults suit tests: everything immediate."""

    brand_id: str = "sandbox"
    datacenter: str = "iad1"
    organization_name: str = "qualflow sandbox"
    page_size: int = 100
    response_availability_delay: float = 0.0  # seconds a new response answers 202
    response_unavailable_reads: int = 0  # GETs of a new response that answer 202 first
    export_duration: float = 0.0  # seconds from export start to "complete"
    oauth_token_ttl: int = 3600
    webhook_max_attempts: int = 4
    webhook_backoff: float = 0.5  # first retry delay; doubles each attempt
    webhook_timeout: float = 10.0
    max_body_bytes: int = 10 * 1024 * 1024
    inbound_event_max_bytes: int = 100 * 1024
    delivery_log_size: int = 10_000
    # When set (e.g. "fra1.qualtrics.com"), successful /API/v3 answers carry the meta.notice a
    # real wrong-datacenter call gets when Qualtrics proxies it; OAuth bearer calls get a 401.
    proxy_notice_host: str | None = None


#: The user type of a brand administrator (the sandbox's users are brand admins by default).
BRAND_ADMIN_TYPE = "UT_BRANDADMIN"


@dataclass
class User:
    id: str
    username: str
    first_name: str
    last_name: str
    email: str
    account_type: str = BRAND_ADMIN_TYPE
    division_id: str | None = None
    account_status: str = "active"
    language: str = "en"
    time_zone: str = "UTC"
    creation_date: str = ""
    api_token: str | None = None

    @property
    def is_brand_admin(self) -> bool:
        return self.account_type == BRAND_ADMIN_TYPE

    def whoami(self, brand_id: str, datacenter: str) -> dict[str, Any]:
        return {
            "brandId": brand_id,
            "userId": self.id,
            "userName": self.username,
            "accountType": self.account_type,
            "firstName": self.first_name,
            "lastName": self.last_name,
            "email": self.email,
            "datacenter": datacenter,
        }

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "divisionId": self.division_id,
            "username": self.username,
            "firstName": self.first_name,
            "lastName": self.last_name,
            "userType": self.account_type,
            "email": self.email,
            "accountStatus": self.account_status,
            "language": self.language,
            "timeZone": self.time_zone,
            "accountCreationDate": self.creation_date,
        }


@dataclass
class OAuthClient:
    client_id: str
    secret_sha256: str
    user_id: str
    name: str = "sandbox client"
    scopes: list[str] = field(default_factory=lambda: ["manage:all"])


@dataclass
class AccessToken:
    token: str
    client_id: str
    user_id: str
    expires_at: float  # epoch seconds
    scope: str


@dataclass(slots=True)
class Response:
    id: str
    survey_id: str
    seq: int
    values: dict[str, Any]
    recorded_ts: float
    in_progress: bool = False
    available_at: float = 0.0  # time.monotonic(); before it, GET answers 202
    unavailable_reads: int = 0  # GETs still to answer 202, whatever the time
    recipient_id: str | None = None
    distribution_id: str | None = None
    modified_ts: float = 0.0  # last change (embedded-data updates); 0 = never changed
    # The sequence number of the last change; a continuation token that follows last-modified
    # dates must see a modified response again, which ``seq`` (recording only) never moves for.
    modified_seq: int = 0

    @property
    def last_modified(self) -> float:
        return self.modified_ts or self.recorded_ts

    def export_seq(self, by_modified: bool) -> int:
        """Where this response sits in what a continuation token follows."""
        return max(self.seq, self.modified_seq) if by_modified else self.seq

    @property
    def finished(self) -> bool:
        return str(self.values.get("finished", 1)) in ("1", "True", "true")


@dataclass
class ExportJob:
    id: str
    survey_id: str
    options: ExportOptions
    after_seq: int
    upto_seq: int
    started_at: float  # time.monotonic()
    fail: bool = False
    file_id: str | None = None
    continuation_token: str | None = None


@dataclass
class Continuation:
    """An issued continuation token: the next export resumes after ``upto_seq`` of its survey."""

    survey_id: str
    upto_seq: int
    issued_at: float  # time.time(); Qualtrics keeps a token for a week

    def expired(self, now: float) -> bool:
        return now - self.issued_at > CONTINUATION_TTL


@dataclass
class Subscription:
    id: str
    topics: str
    publication_url: str
    shared_key: str | None
    owner_id: str
    brand_id: str
    encrypted: bool = False
    successful_calls: int = 0
    creation_date: str = ""

    @property
    def patterns(self) -> list[str]:
        return [t.strip() for t in self.topics.split(",") if t.strip()]

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "scope": "brand",
            "topics": self.topics,
            "publicationUrl": self.publication_url,
            "encrypted": self.encrypted,
            "successfulCalls": self.successful_calls,
        }


@dataclass
class Event:
    """Something a subscription may be told about. ``topic`` has no brand prefix."""

    topic: str
    fields: dict[str, str]


EventListener = Callable[[Event], None]


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class SandboxState:
    """The sandbox's data and behaviour. Construct, then use the helpers, e.g.::

    state = SandboxState()
    user, token = state.create_user(username="ana@example.com")
    client_id, secret = state.add_oauth_client(user_id=user.id)
    """

    def __init__(self, config: SandboxConfig | None = None, *, path: str | Path | None = None):
        self.config = config or SandboxConfig()
        self.path = Path(path) if path else None
        self.lock = threading.RLock()
        self.faults = FaultInjector()
        self._listeners: list[EventListener] = []
        self._dirty = threading.Event()
        self._clear()

    # -- lifecycle ---------------------------------------------------------------------
    def _clear(self) -> None:
        self.users: dict[str, User] = {}
        self.tokens: dict[str, str] = {}  # api token -> user id
        self.oauth_clients: dict[str, OAuthClient] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.surveys: dict[str, Survey] = {}
        self.responses: dict[str, dict[str, Response]] = {}
        self.response_index: dict[str, str] = {}  # response id -> survey id
        self.idempotency: dict[tuple[str, str], str] = {}
        self.exports: dict[str, ExportJob] = {}
        self.export_files: dict[str, str] = {}  # file id -> progress id
        self.continuations: dict[str, Continuation] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.inbound_events: list[dict[str, Any]] = []
        self.seq = 0
        self.fail_next_exports: dict[str, int] = {}  # survey id or "*" -> count
        self._column_cache: dict[str, tuple[int, dict[str, ExportColumn]]] = {}
        # Extension point for other areas' emulators (e.g. a rewards API): JSON-serialisable
        # data, or a live emulator (KeptInState), under a name of theirs, persisted with the
        # state; after a load, the record until the emulator is attached again. A live one is
        # another service's double (Tango's), which a reset of the Qualtrics data leaves be.
        previous: dict[str, Any] = getattr(self, "extra", {})
        self.extra: dict[str, Any] = {
            name: value for name, value in previous.items() if isinstance(value, KeptInState)
        }
        self.directory = DirectoryStore(self)

    def reset(self) -> None:
        """Forget everything (users and tokens too); another service's live double kept in
        :attr:`extra` (Tango's) stays, as it would were it served on its own."""
        with self.lock:
            self._clear()
        self.mark_dirty()

    def add_listener(self, listener: EventListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: EventListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def emit(self, event: Event) -> None:
        for listener in list(self._listeners):
            listener(event)

    def mark_dirty(self) -> None:
        self._dirty.set()

    # -- time ------------------------------------------------------------------------
    def now_iso(self) -> str:
        return iso(utcnow())

    # -- users, tokens, OAuth ----------------------------------------------------------
    def create_user(
        self,
        username: str = "sandbox.admin@example.com",
        *,
        first_name: str = "Sandbox",
        last_name: str = "Admin",
        email: str | None = None,
        account_type: str = BRAND_ADMIN_TYPE,
        api_token: str | None = None,
        user_id: str | None = None,
    ) -> tuple[User, str]:
        """Create a user with an API token; returns ``(user, token)``."""
        token = api_token or ids.api_token()
        if len(token) < 8:
            raise bad_request("Invalid API token: too short.")
        with self.lock:
            if any(u.username == username for u in self.users.values()):
                raise bad_request(f"Invalid request: username {username!r} is already taken.")
            user = User(
                id=user_id or ids.user_id(),
                username=username,
                first_name=first_name,
                last_name=last_name,
                email=email or (username if "@" in username else f"{username}@example.com"),
                account_type=account_type,
                creation_date=self.now_iso(),
                api_token=token,
            )
            self.users[user.id] = user
            self.tokens[token] = user.id
        self.mark_dirty()
        return user, token

    def default_user(self) -> tuple[User, str]:
        """The first user with a token, created on first use."""
        with self.lock:
            for user in self.users.values():
                if user.api_token:
                    return user, user.api_token
        return self.create_user()

    def new_api_token(self, user_id: str) -> str:
        """Issue a new token for a user, invalidating the old one."""
        with self.lock:
            user = self.get_user(user_id)
            if user.api_token:
                self.tokens.pop(user.api_token, None)
            user.api_token = ids.api_token()
            self.tokens[user.api_token] = user.id
        self.mark_dirty()
        return user.api_token

    def get_user(self, user_id: str) -> User:
        user = self.users.get(user_id)
        if user is None:
            raise not_found(f"User {user_id} not found.")
        return user

    def user_for_token(self, token: str) -> User | None:
        user_id = self.tokens.get(token)
        return self.users.get(user_id) if user_id else None

    def add_oauth_client(
        self,
        user_id: str | None = None,
        *,
        name: str = "sandbox client",
        scopes: list[str] | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
    ) -> tuple[str, str]:
        """Register an OAuth client acting as ``user_id`` (default: first user) → (id, secret)."""
        if user_id is None:
            user_id = self.default_user()[0].id
        secret = client_secret or ids.oauth_secret()
        cid = client_id or ids.oauth_client_id()
        with self.lock:
            self.get_user(user_id)
            self.oauth_clients[cid] = OAuthClient(
                client_id=cid,
                secret_sha256=hash_secret(secret),
                user_id=user_id,
                name=name,
                scopes=list(scopes) if scopes else ["manage:all"],
            )
        self.mark_dirty()
        return cid, secret

    def issue_access_token(self, client_id: str, secret: str, scope: str | None) -> AccessToken:
        with self.lock:
            client = self.oauth_clients.get(client_id)
            if client is None or not hmac.compare_digest(client.secret_sha256, hash_secret(secret)):
                raise ApiError(401, "invalid_client", "Client authentication failed.")
            requested = scope.split() if scope else list(client.scopes)
            allowed = set(client.scopes)
            if "manage:all" not in allowed:
                denied = [s for s in requested if s not in allowed]
                if denied:
                    raise ApiError(400, "invalid_scope", f"Scope not granted: {' '.join(denied)}.")
            token = AccessToken(
                token=secrets.token_urlsafe(32),
                client_id=client_id,
                user_id=client.user_id,
                expires_at=time.time() + self.config.oauth_token_ttl,
                scope=" ".join(requested),
            )
            now = time.time()
            for key in [k for k, t in self.access_tokens.items() if t.expires_at < now]:
                del self.access_tokens[key]
            self.access_tokens[token.token] = token
        return token

    def user_for_bearer(self, token: str) -> User | None:
        access = self.access_tokens.get(token)
        if access is None or access.expires_at < time.time():
            return None
        return self.users.get(access.user_id)

    # -- surveys -----------------------------------------------------------------------
    def get_survey(self, survey_id: str) -> Survey:
        survey = self.surveys.get(survey_id)
        if survey is None:
            raise not_found(f"Survey {survey_id} not found.")
        return survey

    def sees_survey(self, user_id: str, survey: Survey) -> bool:
        """Whether the user owns the survey or it was shared with them or a group of theirs
        (research notes §3.1, §7.5). Brand administrators get no wider view: the notes say
        nothing of one, and sharing is how a survey reaches another user."""
        if survey.owner_id == user_id:
            return True
        with self.lock:
            for share in self.directory.collaborations.get(survey.id, ()):
                recipient = share["recipientId"]
                group = self.directory.groups.get(recipient)
                if recipient == user_id or (group is not None and user_id in group["members"]):
                    return True
        return False

    def survey_seen_by(self, user_id: str, survey_id: str) -> Survey:
        """The survey, or the 404 of an unknown one when the user can neither own nor
        collaborate on it: whether it exists is not theirs to learn."""
        with self.lock:
            survey = self.get_survey(survey_id)
            if not self.sees_survey(user_id, survey):
                raise not_found(f"Survey {survey_id} not found.")
            return survey

    def surveys_seen_by(self, user_id: str) -> list[Survey]:
        with self.lock:
            return [s for s in self.surveys.values() if self.sees_survey(user_id, s)]

    def add_survey(self, survey: Survey) -> Survey:
        with self.lock:
            if survey.id in self.surveys:
                raise bad_request(f"Survey {survey.id} already exists.")
            self.surveys[survey.id] = survey
            self.responses.setdefault(survey.id, {})
        self.mark_dirty()
        return survey

    def new_survey(
        self,
        name: str,
        *,
        owner_id: str | None = None,
        language: str = "EN",
        project_category: str = "CORE",
    ) -> Survey:
        """An empty survey with one default block (``POST /survey-definitions``)."""
        if not isinstance(name, str) or not name.strip():
            raise bad_request("Invalid request. Missing or invalid parameter SurveyName.")
        owner = owner_id or self.default_user()[0].id
        now = self.now_iso()
        block = Block(ids.block_id(), "Default Question Block", "Default")
        survey = Survey(
            id=ids.survey_id(),
            name=name,
            owner_id=owner,
            brand_id=self.config.brand_id,
            creation_date=now,
            last_modified=now,
            language=language,
            project_category=project_category,
            blocks={block.id: block},
            flow=[{"Type": "Block", "ID": block.id, "FlowID": "FL_2"}],
            options=default_survey_options(),
        )
        return self.add_survey(survey)

    def import_qsf(self, qsf: Any, *, name: str | None, owner_id: str) -> Survey:
        survey = Survey.from_qsf(
            qsf,
            survey_id=ids.survey_id(),
            name=name,
            owner_id=owner_id,
            brand_id=self.config.brand_id,
            now=self.now_iso(),
        )
        return self.add_survey(survey)

    def copy_survey(self, source_id: str, *, name: str | None, owner_id: str) -> Survey:
        with self.lock:
            source = self.get_survey(source_id)
            record = source.to_record()
        now = self.now_iso()
        record.update(
            id=ids.survey_id(),
            name=name or f"{source.name} - Copy",
            owner_id=owner_id,
            creation_date=now,
            last_modified=now,
            is_active=False,
            last_activated=None,
            deleted_responses=0,
            generated_responses=0,
            response_set_id=ids.response_set_id(),
            filters=[],  # a filter id names one survey's filter
        )
        return self.add_survey(Survey.from_record(record))

    def update_survey(
        self,
        survey_id: str,
        *,
        name: str | None = None,
        is_active: bool | None = None,
        expiration: dict[str, str | None] | None = None,
        description: str | None = None,
    ) -> None:
        """Rename / (de)activate / set expiration; fires (de)activation events on change."""
        event: Event | None = None
        with self.lock:
            survey = self.get_survey(survey_id)
            now = self.now_iso()
            if name is not None:
                survey.name = name
            if description is not None:
                survey.description = description
            if expiration is not None:
                if "startDate" in expiration:
                    survey.expiration_start = expiration["startDate"]
                if "endDate" in expiration:
                    survey.expiration_end = expiration["endDate"]
            if is_active is not None and is_active != survey.is_active:
                survey.is_active = is_active
                if is_active:
                    survey.last_activated = now
                topic = (
                    "controlpanel.activateSurvey" if is_active else "controlpanel.deactivateSurvey"
                )
                event = Event(
                    topic,
                    {
                        "Status": "Active" if is_active else "Inactive",
                        "SurveyID": survey.id,
                        "BrandID": self.config.brand_id,
                    },
                )
            survey.touch(now)
        self.mark_dirty()
        if event:
            self.emit(event)

    def delete_survey(self, survey_id: str) -> None:
        with self.lock:
            self.get_survey(survey_id)
            del self.surveys[survey_id]
            for rid in self.responses.pop(survey_id, {}):
                self.response_index.pop(rid, None)
            self._column_cache.pop(survey_id, None)
        self.mark_dirty()

    def columns(self, survey: Survey) -> dict[str, ExportColumn]:
        """Question columns by values key, cached per survey revision."""
        cached = self._column_cache.get(survey.id)
        if cached is not None and cached[0] == survey.revision:
            return cached[1]
        index = survey.column_index()
        self._column_cache[survey.id] = (survey.revision, index)
        return index

    def add_question(self, survey_id: str, definition: Any, block_id: str | None) -> str:
        with self.lock:
            survey = self.get_survey(survey_id)
            qid = survey.next_question_id()
            question = Question.from_definition(qid, definition)
            survey.add_question(question, block_id)
            survey.touch(self.now_iso())
        self.mark_dirty()
        return qid

    def replace_question(self, survey_id: str, qid: str, definition: Any) -> None:
        with self.lock:
            survey = self.get_survey(survey_id)
            if qid not in survey.questions:
                raise not_found(f"Question {qid} not found in survey {survey_id}.")
            question = Question.from_definition(qid, definition)
            survey.questions[qid] = question
            survey.touch(self.now_iso())
        self.mark_dirty()

    def delete_question(self, survey_id: str, qid: str) -> None:
        with self.lock:
            survey = self.get_survey(survey_id)
            if qid not in survey.questions:
                raise not_found(f"Question {qid} not found in survey {survey_id}.")
            survey.remove_question(qid)
            survey.touch(self.now_iso())
        self.mark_dirty()

    # -- responses ---------------------------------------------------------------------
    def record_response(
        self,
        survey_id: str,
        values: Any,
        *,
        idempotency_key: str | None = None,
        in_progress: bool = False,
        recipient_id: str | None = None,
        distribution_id: str | None = None,
        emit: bool = True,
    ) -> Response:
        """Validate and store a response; fires completed/partial events (unless in progress).

        ``values`` uses the keys of a real response's ``values``: ``QID1`` (choice recode),
        ``QID2_TEXT``, ``QID3_1`` (matrix row / slider / rank), metadata such as ``finished``,
        ``startDate``, ``recordedDate``, and any other key as embedded data.
        """
        if not isinstance(values, dict):
            raise bad_request(
                "Invalid request. Missing or invalid parameter values: expected an object."
            )
        now = utcnow()
        with self.lock:
            survey = self.get_survey(survey_id)
            if idempotency_key:
                existing = self.idempotency.get((survey_id, idempotency_key))
                if existing and existing in self.responses[survey_id]:
                    return self.responses[survey_id][existing]
            columns = self.columns(survey)
            clean, recorded_ts = _normalise_values(survey, columns, values, now)
            rid = ids.response_id()
            clean["_recordId"] = rid
            self.seq += 1
            response = Response(
                id=rid,
                survey_id=survey_id,
                seq=self.seq,
                values=clean,
                recorded_ts=recorded_ts,
                in_progress=in_progress,
                available_at=time.monotonic() + self.config.response_availability_delay,
                unavailable_reads=self.config.response_unavailable_reads,
                recipient_id=recipient_id,
                distribution_id=distribution_id,
            )
            self.responses[survey_id][rid] = response
            self.response_index[rid] = survey_id
            if idempotency_key:
                self.idempotency[(survey_id, idempotency_key)] = rid
        self.mark_dirty()
        if emit and not in_progress:
            self.emit(self.response_event(response))
        return response

    def response_event(self, response: Response) -> Event:
        finished = response.finished
        kind = "completedResponse" if finished else "partialResponse"
        end = response.values.get("recordedDate") or response.values.get("endDate")
        completed = parse_iso(end, "recordedDate").strftime("%Y-%m-%d %H:%M:%S") if end else ""
        return Event(
            f"surveyengine.{kind}.{response.survey_id}",
            {
                "Status": "Complete" if finished else "Partial",
                "SurveyID": response.survey_id,
                "ResponseID": response.id,
                "RecipientID": response.recipient_id or "",
                "ResponseEventContext": str(response.values.get("ResponseEventContext", ""))[:50],
                "DistributionID": response.distribution_id or "",
                "CompletedDate": completed,
                "BrandID": self.config.brand_id,
            },
        )

    def start_session(
        self,
        survey_id: str,
        *,
        recipient_id: str | None = None,
        distribution_id: str | None = None,
        context: str = "",
    ) -> None:
        """Fire ``startedRecipientSession`` (a respondent opened a personal link)."""
        with self.lock:
            self.get_survey(survey_id)
        self.emit(
            Event(
                f"surveyengine.startedRecipientSession.{survey_id}",
                {
                    "Status": "Started",
                    "SurveyID": survey_id,
                    "RecipientID": recipient_id or "",
                    "ResponseEventContext": context[:50],
                    "DistributionID": distribution_id or "",
                    "StartedDate": utcnow().strftime("%Y-%m-%d %H:%M:%S"),
                    "BrandID": self.config.brand_id,
                },
            )
        )

    def finish_response(self, response_id: str, values: dict[str, Any]) -> Response:
        """Close an in-progress response with its final values (fires completed/partial)."""
        with self.lock:
            survey_id = self.response_index.get(response_id)
            if survey_id is None:
                raise not_found(f"Response {response_id} not found.")
            response = self.responses[survey_id][response_id]
            if not response.in_progress:
                raise bad_request(f"Response {response_id} is already recorded.")
            survey = self.surveys[survey_id]
            clean, recorded_ts = _normalise_values(survey, self.columns(survey), values, utcnow())
            clean["_recordId"] = response_id
            response.values = clean
            response.in_progress = False
            self.seq += 1
            response.seq = self.seq
            response.recorded_ts = recorded_ts
        self.mark_dirty()
        self.emit(self.response_event(response))
        return response

    def get_response(self, survey_id: str, response_id: str) -> Response:
        with self.lock:
            self.get_survey(survey_id)
            response = self.responses[survey_id].get(response_id)
            if response is None or response.in_progress:
                raise not_found(f"Response {response_id} not found in survey {survey_id}.")
            return response

    def update_response_embedded(
        self,
        response_id: str,
        survey_id: str,
        embedded: dict[str, Any],
        *,
        reset_recorded_date: bool = False,
    ) -> None:
        with self.lock:
            self.get_survey(survey_id)
            response = self.responses[survey_id].get(response_id)
            if response is None:
                raise not_found(f"Response {response_id} not found in survey {survey_id}.")
            columns = self.columns(self.surveys[survey_id])
            for key in embedded:
                if key in columns or key in _METADATA_FIELDS:
                    raise bad_request(
                        f"Invalid embeddedData: {key!r} is not an embedded data field "
                        "(only embedded data can be updated)."
                    )
            values = dict(response.values)  # copy-on-write: a saver may be reading the old dict
            values.update({k: _embedded_value(v) for k, v in embedded.items()})
            response.modified_ts = time.time()
            self.seq += 1
            response.modified_seq = self.seq
            if reset_recorded_date:
                now = utcnow()
                values["recordedDate"] = iso(now, millis=True)
                response.recorded_ts = now.timestamp()
                response.seq = self.seq
            response.values = values
        self.mark_dirty()

    def delete_response(self, survey_id: str, response_id: str) -> None:
        with self.lock:
            survey = self.get_survey(survey_id)
            if self.responses[survey_id].pop(response_id, None) is None:
                raise not_found(f"Response {response_id} not found in survey {survey_id}.")
            self.response_index.pop(response_id, None)
            survey.deleted_responses += 1
        self.mark_dirty()

    def response_count(self, survey_id: str) -> int:
        return sum(1 for r in self.responses.get(survey_id, {}).values() if not r.in_progress)

    # -- saved response filters ----------------------------------------------------------
    def list_filters(self, survey_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [f.to_api() for f in self.get_survey(survey_id).filters]

    def add_filter(self, survey_id: str, body: dict[str, Any]) -> ResponseFilter:
        """Save a filter (in Qualtrics, only its web UI can); see :mod:`sandbox.filters`."""
        saved = ResponseFilter.parse(body, self.now_iso())
        with self.lock:
            self.get_survey(survey_id).filters.append(saved)
        self.mark_dirty()
        return saved

    # -- exports -----------------------------------------------------------------------
    def start_export(self, survey_id: str, body: Any) -> ExportJob:
        with self.lock:
            survey = self.get_survey(survey_id)
            opts = ExportOptions.parse(body, survey)
            after = 0
            if opts.continuation_token:
                found = self.continuations.get(opts.continuation_token)
                if found is None or found.survey_id != survey_id:
                    raise bad_request(
                        "Invalid request. Missing or invalid parameter continuationToken: "
                        "unknown or expired token."
                    )
                if found.expired(time.time()):
                    raise bad_request(
                        "Invalid request. Missing or invalid parameter continuationToken: "
                        "the token expired (tokens are good for a week); export everything "
                        "again with allowContinuation for a new one."
                    )
                after = found.upto_seq
            upto = self.seq
            if opts.limit is not None and (opts.allow_continuation or opts.continuation_token):
                # The token must resume right after the last response this export holds, or
                # the ones the limit left out are never exported; so the limit takes responses
                # in the order they were recorded (or last changed, when the export follows
                # modified dates) and the export ends at the last one taken.
                survey = self.surveys[survey_id]
                by_modified = opts.sort_by_modified
                taken = sorted(
                    n
                    for r in _selectable(self.responses[survey_id].values(), survey, opts)
                    if after < (n := r.export_seq(by_modified)) <= upto
                )
                if len(taken) > opts.limit:
                    upto = taken[opts.limit - 1]
            fail = False
            for key in (survey_id, "*"):
                left = self.fail_next_exports.get(key, 0)
                if left > 0:
                    self.fail_next_exports[key] = left - 1
                    fail = True
                    break
            job = ExportJob(
                id=ids.export_progress_id(),
                survey_id=survey_id,
                options=opts,
                after_seq=after,
                upto_seq=upto,
                started_at=time.monotonic(),
                fail=fail,
            )
            self.exports[job.id] = job
        self.mark_dirty()
        return job

    def export_progress(self, survey_id: str, progress_id: str) -> dict[str, Any]:
        with self.lock:
            self.get_survey(survey_id)
            job = self.exports.get(progress_id)
            if job is None or job.survey_id != survey_id:
                raise not_found(f"Export {progress_id} not found for survey {survey_id}.")
            duration = self.config.export_duration
            elapsed = time.monotonic() - job.started_at
            if duration > 0 and elapsed < duration:
                return {
                    "percentComplete": round(min(99.0, 100.0 * elapsed / duration), 1),
                    "status": "inProgress",
                }
            if job.fail:
                return {"fileId": None, "percentComplete": 100.0, "status": "failed"}
            if job.file_id is None:
                job.file_id = ids.file_id()
                self.export_files[job.file_id] = job.id
                if job.options.allow_continuation or job.options.continuation_token:
                    token = secrets.token_urlsafe(24)
                    self.continuations[token] = Continuation(survey_id, job.upto_seq, time.time())
                    job.continuation_token = token
                self.mark_dirty()
            result: dict[str, Any] = {
                "fileId": job.file_id,
                "percentComplete": 100.0,
                "status": "complete",
            }
            if job.continuation_token:
                result["continuationToken"] = job.continuation_token
            return result

    def export_job_for_file(self, survey_id: str, file_id: str) -> ExportJob:
        with self.lock:
            self.get_survey(survey_id)
            progress_id = self.export_files.get(file_id)
            job = self.exports.get(progress_id) if progress_id else None
            if job is None or job.survey_id != survey_id:
                raise not_found(f"Export file {file_id} not found for survey {survey_id}.")
            return job

    def export_records(self, job: ExportJob) -> Iterator[dict[str, Any]]:
        """Values of the responses an export covers, in recorded order (snapshot of refs)."""
        opts = job.options
        with self.lock:
            pool = list(self.responses.get(job.survey_id, {}).values())
            survey = self.surveys.get(job.survey_id)
        if survey is None:
            return
        by_modified = opts.sort_by_modified

        def stamp(r: Response) -> float:
            return r.last_modified if by_modified else r.recorded_ts

        selected = [
            r
            for r in _selectable(pool, survey, opts)
            if job.after_seq < r.export_seq(by_modified) <= job.upto_seq
        ]
        selected.sort(key=lambda r: (stamp(r), r.export_seq(by_modified)))
        if opts.limit is not None:
            selected = selected[: opts.limit]
        for r in selected:
            if by_modified:
                modified = datetime.fromtimestamp(r.last_modified, UTC)
                yield {**r.values, LAST_MODIFIED_KEY: iso(modified, millis=True)}
            else:
                yield r.values

    def fail_exports(self, survey_id: str | None = None, count: int = 1) -> None:
        """Fault injection: the next ``count`` exports (of one survey, or any) end ``failed``."""
        with self.lock:
            key = survey_id or "*"
            self.fail_next_exports[key] = self.fail_next_exports.get(key, 0) + count

    # -- event subscriptions -------------------------------------------------------------
    def add_subscription(
        self, *, topics: str, publication_url: str, shared_key: str | None, owner_id: str
    ) -> Subscription:
        sub = Subscription(
            id=ids.subscription_id(),
            topics=topics,
            publication_url=publication_url,
            shared_key=shared_key,
            owner_id=owner_id,
            brand_id=self.config.brand_id,
            creation_date=self.now_iso(),
        )
        with self.lock:
            self.subscriptions[sub.id] = sub
        self.mark_dirty()
        return sub

    def get_subscription(self, subscription_id: str) -> Subscription:
        sub = self.subscriptions.get(subscription_id)
        if sub is None:
            raise not_found(f"Event subscription {subscription_id} not found.")
        return sub

    def delete_subscription(self, subscription_id: str) -> None:
        with self.lock:
            self.get_subscription(subscription_id)
            del self.subscriptions[subscription_id]
        self.mark_dirty()

    # -- inbound JSON events -------------------------------------------------------------
    def record_inbound_event(
        self, url_token_id: str, user_id: str | None, body: Any
    ) -> dict[str, Any]:
        event = {
            "id": ids.request_id(),
            "receivedAt": iso(utcnow(), millis=True),
            "urlTokenId": url_token_id,
            "userId": user_id,
            "body": body,
        }
        with self.lock:
            self.inbound_events.append(event)
        self.mark_dirty()
        return event

    # -- persistence -------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        with self.lock:
            surveys = [s.to_record() for s in self.surveys.values()]
            responses = [
                {
                    "id": r.id,
                    "surveyId": r.survey_id,
                    "seq": r.seq,
                    "values": r.values,
                    "inProgress": r.in_progress,
                    "recipientId": r.recipient_id,
                    "distributionId": r.distribution_id,
                    "modifiedTs": r.modified_ts,
                    "modifiedSeq": r.modified_seq,
                }
                for per_survey in self.responses.values()
                for r in per_survey.values()
            ]
            data = {
                "version": STATE_FORMAT_VERSION,
                "config": asdict(self.config),
                "seq": self.seq,
                "users": [asdict(u) for u in self.users.values()],
                "oauthClients": [asdict(c) for c in self.oauth_clients.values()],
                "surveys": surveys,
                "responses": responses,
                "idempotency": [[s, k, r] for (s, k), r in self.idempotency.items()],
                "exports": [
                    {
                        "id": j.id,
                        "surveyId": j.survey_id,
                        "options": j.options.to_record(),
                        "afterSeq": j.after_seq,
                        "uptoSeq": j.upto_seq,
                        "fail": j.fail,
                        "fileId": j.file_id,
                        "continuationToken": j.continuation_token,
                    }
                    for j in self.exports.values()
                ],
                "continuations": {t: asdict(c) for t, c in self.continuations.items()},
                "subscriptions": [asdict(s) for s in self.subscriptions.values()],
                "inboundEvents": list(self.inbound_events),
                "directory": self.directory.to_json(),
                "extra": json.loads(json.dumps(self._extra_records())),
                "faults": self.faults.to_json(),
            }
        return data

    def _extra_records(self) -> dict[str, Any]:
        # A live emulator kept in ``extra`` (the Tango double) is written as its own record.
        return {
            name: value.to_json() if isinstance(value, KeptInState) else value
            for name, value in self.extra.items()
        }

    def load_json(self, data: dict[str, Any]) -> None:
        if data.get("version") != STATE_FORMAT_VERSION:
            raise ValueError(f"unsupported sandbox state version {data.get('version')!r}")
        with self.lock:
            self._clear()
            cfg = data.get("config") or {}
            known = set(SandboxConfig.__dataclass_fields__)
            self.config = SandboxConfig(**{k: v for k, v in cfg.items() if k in known})
            self.seq = int(data.get("seq", 0))
            for raw in data.get("users", []):
                user = User(**raw)
                self.users[user.id] = user
                if user.api_token:
                    self.tokens[user.api_token] = user.id
            for raw in data.get("oauthClients", []):
                client = OAuthClient(**raw)
                self.oauth_clients[client.client_id] = client
            for raw in data.get("surveys", []):
                survey = Survey.from_record(raw)
                self.surveys[survey.id] = survey
                self.responses[survey.id] = {}
            for raw in data.get("responses", []):
                values = raw["values"]
                response = Response(
                    id=raw["id"],
                    survey_id=raw["surveyId"],
                    seq=raw["seq"],
                    values=values,
                    recorded_ts=parse_iso(values["recordedDate"], "recordedDate").timestamp(),
                    in_progress=raw.get("inProgress", False),
                    recipient_id=raw.get("recipientId"),
                    distribution_id=raw.get("distributionId"),
                    modified_ts=raw.get("modifiedTs", 0.0),
                    modified_seq=int(raw.get("modifiedSeq", 0)),
                )
                if response.survey_id in self.responses:
                    self.responses[response.survey_id][response.id] = response
                    self.response_index[response.id] = response.survey_id
            for s, k, r in data.get("idempotency", []):
                self.idempotency[(s, k)] = r
            for raw in data.get("exports", []):
                owner = self.surveys.get(raw["surveyId"])
                if owner is None:
                    continue
                job = ExportJob(
                    id=raw["id"],
                    survey_id=raw["surveyId"],
                    options=ExportOptions.from_record(raw["options"], owner),
                    after_seq=raw["afterSeq"],
                    upto_seq=raw["uptoSeq"],
                    started_at=0.0,
                    fail=raw.get("fail", False),
                    file_id=raw.get("fileId"),
                    continuation_token=raw.get("continuationToken"),
                )
                self.exports[job.id] = job
                if job.file_id:
                    self.export_files[job.file_id] = job.id
            # Older state files kept [survey id, seq] and the issue times apart (or none:
            # those tokens count from this load).
            issued = data.get("continuationIssued") or {}
            for token, kept in (data.get("continuations") or {}).items():
                if isinstance(kept, list):
                    kept = {"survey_id": kept[0], "upto_seq": kept[1],
                            "issued_at": issued.get(token, time.time())}  # fmt: skip
                self.continuations[token] = Continuation(
                    str(kept["survey_id"]), int(kept["upto_seq"]), float(kept["issued_at"])
                )
            for raw in data.get("subscriptions", []):
                sub = Subscription(**raw)
                self.subscriptions[sub.id] = sub
            self.inbound_events = list(data.get("inboundEvents", []))
            self.directory.load_json(data.get("directory") or {})
            self.extra = dict(data.get("extra") or {})
            faults = data.get("faults") or {}
            if faults.get("rateLimitPerMinute"):
                self.faults.set_rate_limit(int(faults["rateLimitPerMinute"]))

    def save(self, path: str | Path | None = None) -> Path:
        """Write the state atomically (temp file + rename) to ``path`` or ``self.path``."""
        target = Path(path) if path else self.path
        if target is None:
            raise ValueError("no state file configured")
        self._dirty.clear()
        try:
            data = self.to_json()
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".sandbox-", suffix=".json", dir=target.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(data, fh, ensure_ascii=False, separators=(",", ":"))
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except BaseException:
            self._dirty.set()  # not saved: a later save tries again
            raise
        return target

    @classmethod
    def load(cls, path: str | Path, *, config: SandboxConfig | None = None) -> SandboxState:
        """Load a state file (a fresh state bound to ``path`` if the file does not exist)."""
        p = Path(path)
        if not p.exists():
            return cls(config, path=path)
        with p.open("rb") as fh:
            raw = fh.read(MAX_STATE_BYTES + 1)
        return cls.from_bytes(raw, path=path, config=config)

    @classmethod
    def from_bytes(
        cls, raw: bytes, *, path: str | Path, config: SandboxConfig | None = None
    ) -> SandboxState:
        """The state a state file's bytes describe, bound to ``path``; ValueError if they are
        not a sandbox state file."""
        p = Path(path)
        if len(raw) > MAX_STATE_BYTES:
            raise ValueError(
                f"{p}: larger than {MAX_STATE_BYTES // (1024 * 1024)} MB; not a sandbox state file"
            )
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{p}: not a sandbox state file ({exc.msg})") from None
        except UnicodeDecodeError:
            raise ValueError(f"{p}: not a sandbox state file (not UTF-8)") from None
        except RecursionError:
            raise ValueError(f"{p}: not a sandbox state file (nested too deeply)") from None
        if not isinstance(data, dict):
            raise ValueError(f"{p}: not a sandbox state file")
        if data.get("version") != STATE_FORMAT_VERSION:
            raise ValueError(
                f"{p}: unsupported sandbox state version {data.get('version')!r} "
                f"(this qualflow reads version {STATE_FORMAT_VERSION})"
            )
        # Every state file the sandbox ever wrote has these; JSON that lacks them is some other
        # file, which must not be taken for an empty sandbox (and then overwritten by its save).
        for key, kind in _REQUIRED_STATE_KEYS.items():
            if not isinstance(data.get(key), kind):
                what = "list" if kind is list else "object"
                raise ValueError(f"{p}: not a sandbox state file (no {key!r} {what})")
        state = cls(config, path=path)
        try:
            state.load_json(data)
        except Exception as exc:  # any malformed record, whatever it trips over
            if isinstance(exc, ApiError):
                reason = exc.message
            elif isinstance(exc, KeyError):
                reason = f"a record lacks {exc}"
            else:
                reason = str(exc) or type(exc).__name__
            raise ValueError(f"{p}: not a sandbox state file ({reason})") from None
        if config is not None:
            state.config = config
        state._dirty.clear()
        return state

    @property
    def dirty(self) -> bool:
        return self._dirty.is_set()

    def start_autosave(self, interval: float = 1.0) -> Callable[[], None]:
        """Save to ``self.path`` at most every ``interval`` s while dirty; returns a stopper."""
        if self.path is None:
            raise ValueError("no state file configured")
        stop = threading.Event()

        failing = False

        def save_now() -> None:
            # A failed save is one log line (once until a save succeeds again), not a dead
            # thread: the state stays dirty and the next tick tries again.
            nonlocal failing
            try:
                self.save()
            except (OSError, ValueError, TypeError) as exc:
                if not failing:
                    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                    log.error("cannot save the sandbox state to %s: %s (will retry)", self.path,
                              reason)  # fmt: skip
                failing = True
            else:
                if failing:
                    log.warning("saved the sandbox state to %s again", self.path)
                failing = False

        def run() -> None:
            while not stop.wait(interval):
                if self._dirty.is_set():
                    save_now()
            if self._dirty.is_set():
                save_now()

        thread = threading.Thread(target=run, name="sandbox-autosave", daemon=True)
        thread.start()

        def stopper() -> None:
            stop.set()
            thread.join()

        return stopper


_METADATA_FIELDS = frozenset(
    {
        "startDate", "endDate", "status", "ipAddress", "progress", "duration", "finished",
        "recordedDate", "_recordId", "locationLatitude", "locationLongitude", "distributionChannel",
        "userLanguage", "recipientFirstName", "recipientLastName", "recipientEmail",
        "externalDataReference",
    }
)  # fmt: skip


def _embedded_value(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    raise bad_request("Invalid embeddedData: values must be strings or numbers.")


def _int_field(
    values: dict[str, Any], name: str, lo: int | None = None, hi: int | None = None
) -> int | None:
    if name not in values or values[name] is None:
        return None
    raw = values[name]
    if isinstance(raw, bool):
        return int(raw)
    try:
        number = int(raw)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an infinite float
        raise bad_request(f"Invalid value for {name}: expected an integer.") from None
    if (lo is not None and number < lo) or (hi is not None and number > hi):
        raise bad_request(f"Invalid value for {name}: {number} is out of range.")
    return number


_DATE_KEYS = frozenset({"startDate", "endDate", "recordedDate"})
#: The longest a response may have been open (seconds): ten years.
_MAX_DURATION = 10 * 365 * 24 * 3600


def _normalise_values(
    survey: Survey, columns: dict[str, ExportColumn], values: dict[str, Any], now: datetime
) -> tuple[dict[str, Any], float]:
    """Check answers against the survey's columns and fill the metadata a real response has.

    Returns the clean values and the recordedDate as a timestamp.
    """
    clean: dict[str, Any] = {}
    dates: dict[str, datetime] = {}
    for key, value in values.items():
        col = columns.get(key)
        if col is not None:
            assert col.question is not None
            col.question.validate_value(key, value, col)
            if value is not None:
                if col.kind == "multi":
                    value = [str(v) for v in (value if isinstance(value, list) else [value])]
                elif col.kind == "single" and type(value) is not int:
                    value = int(value) if str(value).lstrip("-").isdecimal() else value
            clean[key] = value
        elif not isinstance(key, str) or not key:
            raise bad_request("Invalid values: keys must be non-empty strings.")
        elif key.startswith("QID"):
            raise bad_request(
                f"Invalid values: {key!r} is not a question field of survey {survey.id}."
            )
        elif key in _DATE_KEYS:
            dates[key] = parse_iso(value, key)
        elif key != "_recordId":
            clean[key] = _embedded_value(value)
    finished = _int_field(values, "finished", 0, 1)
    clean["finished"] = 1 if finished is None else finished
    progress = _int_field(values, "progress", 0, 100)
    clean["progress"] = progress if progress is not None else (100 if clean["finished"] else 0)
    status = _int_field(values, "status", 0, 17)
    clean["status"] = status if status is not None else 0
    end = dates.get("endDate", now)
    duration = _int_field(values, "duration", 0, _MAX_DURATION)
    start = dates.get("startDate")
    if start is not None:
        if start > end:
            raise bad_request("Invalid values: startDate is after endDate.")
        if duration is None:
            duration = int((end - start).total_seconds())
    else:
        duration = duration if duration is not None else 0
        try:
            start = end - timedelta(seconds=duration)
        except OverflowError:
            raise bad_request("Invalid values: the duration starts before the year 1.") from None
    recorded = dates.get("recordedDate") or max(end, now)
    clean["startDate"] = iso(start)
    clean["endDate"] = iso(end)
    clean["duration"] = duration
    clean["recordedDate"] = iso(recorded, millis=True)
    clean.setdefault("ipAddress", None)
    clean.setdefault("distributionChannel", "anonymous")
    clean.setdefault("userLanguage", survey.language)
    for key, col in columns.items():
        if col.kind == "nps_group" and key not in clean:
            score = clean.get(key[: -len("_NPS_GROUP")])
            if type(score) is int:
                clean[key] = nps_group(score)
    return clean, recorded.timestamp()


def _selectable(
    pool: Iterable[Response], survey: Survey, opts: ExportOptions
) -> Iterator[Response]:
    """The responses of ``pool`` an export with ``opts`` takes, whatever their sequence."""
    start = opts.start.timestamp() if opts.start else None
    end = opts.end.timestamp() if opts.end else None
    by_modified = opts.sort_by_modified
    saved = survey.find_filter(opts.filter_id) if opts.filter_id else None
    for r in pool:
        if r.in_progress != opts.in_progress:
            continue
        stamp = r.last_modified if by_modified else r.recorded_ts
        if (start is not None and stamp < start) or (end is not None and stamp >= end):
            continue
        if saved is not None and not saved.matches(r.values):
            continue
        yield r
