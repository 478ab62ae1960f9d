"""Incentive pages: incentives (list, detail with review and test reward, create/edit), the review
queue (release/block, one or many), a reward's history, providers (Tango accounts, gift-code
pools) and platform API keys.

Pages use the web UI's layout, permissions (``ui_require``) and CSRF-checked forms; templates
live in this package (``templates/incentives/``) and extend the shared ``layout.html``.
"""

from __future__ import annotations

import asyncio
import math
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Request
from jinja2 import ChoiceLoader, FileSystemLoader
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from qualflow.accounts.permissions import Area, Level
from qualflow.accounts.principal import Principal
from qualflow.incentives import api_keys
from qualflow.incentives.api import TestRewardIn, load_review, run_test_reward
from qualflow.incentives.lifecycle import TransitionError
from qualflow.incentives.manage import (
    IncentiveError,
    InUse,
    shown_base_url,
    spec_of,
    window_state,
)
from qualflow.incentives.models import (
    REWARD_STATUSES,
    ApiKeyAudit,
    Incentive,
    Reward,
    RewardTransition,
)
from qualflow.incentives.money import format_money, from_minor
from qualflow.incentives.providers.gift_codes import MAX_IMPORT_BYTES, MAX_IMPORT_MB
from qualflow.incentives.providers.tango_client import TangoError
from qualflow.incentives.review import automations_using
from qualflow.incentives.runtime import IncentivesRuntime, get_runtime
from qualflow.incentives.schemas import (
    DEFAULT_BODY,
    DEFAULT_SUBJECT,
    TEMPLATE_VARIABLES,
    FraudRules,
    IncentivePatch,
    IncentiveSpec,
)
from qualflow.incentives.service import (
    ActionResult,
    IncentiveNotFound,
    RewardFailed,
    RewardNotFound,
    get_incentive,
    get_reward,
)
from qualflow.store.secrets import mask
from qualflow.validation import MAX_ID, describe_errors
from qualflow.web.deps import get_db, get_store
from qualflow.web.ui import flash
from qualflow.web.ui.access import UiNotFound, ui_require
from qualflow.web.ui.auth_pages import safe_next
from qualflow.web.ui.csrf import check_csrf
from qualflow.web.ui.rendering import NavItem, env, render, render_fragment
from qualflow.web.ui.suggestions import register_suggestions

TEMPLATES = Path(__file__).parent / "templates"

router = APIRouter(include_in_schema=False)
Viewer = Annotated[Principal, Depends(ui_require(Area.INCENTIVES, Level.VIEW))]
Manager = Annotated[Principal, Depends(ui_require(Area.INCENTIVES, Level.MANAGE))]
KeyViewer = Annotated[Principal, Depends(ui_require(Area.API_KEYS, Level.VIEW))]
KeyManager = Annotated[Principal, Depends(ui_require(Area.API_KEYS, Level.MANAGE))]
Db = Annotated[Session, Depends(get_db)]
Runtime = Annotated[IncentivesRuntime, Depends(get_runtime)]
CsrfChecked = Depends(check_csrf)
PAGE_SIZE = 50
T = TypeVar("T")
#: The messages a page shows after an action (web.ui.flash keeps the last five).
FLASH_ROOM = 5


def install_pages(app: FastAPI) -> None:
    """Add the pages, this package's templates to the UI's loader, and the navigation items."""
    from qualflow.web.ui import rendering

    loader = env.loader
    if not (
        isinstance(loader, ChoiceLoader)
        and any(
            isinstance(item, FileSystemLoader) and str(TEMPLATES) in item.searchpath
            for item in loader.loaders
        )
    ):
        env.loader = ChoiceLoader([loader, FileSystemLoader(str(TEMPLATES))]) if loader else (
            FileSystemLoader(str(TEMPLATES))
        )  # fmt: skip
    # The sidebar lists what the web UI's NAV names; incentives add theirs once.
    if not any(item.key == "incentives" for item in rendering.NAV):
        nav: Any = (
            *rendering.NAV,
            NavItem("incentives", "Incentives", "★", "ui_incentives", Area.INCENTIVES),
            NavItem("reward_queue", "Review queue", "⚑", "ui_reward_queue", Area.INCENTIVES),
            NavItem("api_keys", "API keys", "⚷", "ui_api_keys", Area.API_KEYS),
        )
        rendering.NAV = nav
    app.include_router(router)
    register_suggestions(app, "incentives", _incentive_suggestions)


def _incentive_suggestions(request: Request, principal: Principal) -> list[tuple[str, str]]:
    """Open and paused incentives, for the reference id of an ``incentives.send_reward`` step."""
    if not principal.can(Area.INCENTIVES):
        return []
    states = [(i, window_state(i)) for i in get_runtime(request).manager.list_incentives()]
    return [(i.reference_id, f"{i.name} ({state})") for i, state in states if state != "closed"]


def _redirect(request: Request, route: str, **params: Any) -> RedirectResponse:
    return RedirectResponse(request.url_for(route, **params).path, status_code=303)


def _flash_results(
    request: Request, response: Response, results: list[ActionResult], verb: str
) -> None:
    done = [r for r in results if r.ok]
    refused = [r for r in results if not r.ok]
    if done:
        names = ", ".join(r.reference_id for r in done[:5]) + ("…" if len(done) > 5 else "")
        flash.add(request, response, "success", f"{verb} {len(done)} reward(s): {names}.")
    shown, rest = _within_room(refused, FLASH_ROOM - (1 if done else 0))
    for result in shown:
        flash.add(request, response, "error", f"{result.reference_id}: {result.message}")
    if rest:
        flash.add(
            request, response, "error",
            f"{len(rest)} more reward(s) refused: "
            # As many as a message holds (its 500 characters), each reference whole.
            + ", ".join(r.reference_id for r in rest[:30]) + ("…" if len(rest) > 30 else "."),
        )  # fmt: skip


def _within_room(items: list[T], room: int) -> tuple[list[T], list[T]]:
    """The items to show one message each, and the rest, for ``room`` messages: when they do not
    all fit, the last message is left to sum up the rest."""
    if len(items) <= room:
        return items, []
    return items[: room - 1], items[room - 1 :]


#: What lists of rewards leave out: the delivery (a secret, decrypted on load) that no list
#: shows. raiseload: a template that came to show it would fail its tests instead of loading it
#: row by row.
WITHOUT_DELIVERY = defer(Reward.delivery, raiseload=True)


def _incentive_or_404(request: Request, db: Session, reference: str) -> Incentive:
    try:
        return get_incentive(db, reference)
    except IncentiveNotFound:
        raise UiNotFound(
            f"Incentive {reference}", request.url_for("ui_incentives").path, "Back to incentives"
        ) from None


def _value(incentive: Incentive) -> str:
    return format_money(incentive.amount_minor, incentive.currency)


env.globals["incentive_value"] = _value
env.globals["incentive_state"] = window_state
env.filters["money"] = lambda minor, currency: format_money(int(minor), str(currency))


# -- incentives ---------------------------------------------------------------------------------


@router.get("/incentives", name="ui_incentives")
def incentives_page(request: Request, principal: Viewer, runtime: Runtime) -> Response:
    incentives = runtime.manager.list_incentives()
    counts = runtime.manager.counts([i.id for i in incentives])
    return render(
        request, "incentives/list.html", principal=principal, nav="incentives",
        incentives=incentives, counts=counts, low_stock=runtime.manager.low_stock(),
    )  # fmt: skip


#: What a blank field means: the defaults the REST API and the CLI apply too.
_RULES = FraudRules()
_LOW_STOCK_DEFAULT: int = IncentiveSpec.model_fields["low_stock_threshold"].default
#: The same defaults as the form's help text shows them.
_BLANK_MEANS = {
    "recaptcha_threshold": f"{_RULES.recaptcha.threshold:g}",
    "duplicate_threshold": f"{_RULES.relevant_id_duplicate.threshold:g}",
    "fraud_threshold": f"{_RULES.relevant_id_fraud.threshold:g}",
    "shared_email_threshold": str(_RULES.shared_email.threshold),
    "shared_ip_threshold": str(_RULES.shared_ip.threshold),
    "low_stock_threshold": str(_LOW_STOCK_DEFAULT),
}


class IncentiveForm:
    """The incentive form: raw strings in, an :class:`IncentiveSpec` (or errors) out."""

    TEXT = (
        "name", "description", "provider", "gift_code_pool_id", "tango_account_id", "utid",
        "amount", "currency", "reward_name", "approval_mode", "max_rewards", "budget",
        "opens_at", "closes_at", "email_subject", "email_body", "redemption_instructions",
        "low_stock_threshold", "alert_emails", "participant_id_field",
        "recaptcha_threshold", "duplicate_threshold", "fraud_threshold", "shared_email_threshold",
        "shared_ip_threshold",
    )  # fmt: skip
    FLAGS = (
        "active", "recaptcha_enabled", "duplicate_enabled", "fraud_enabled", "ballot_enabled",
        "hold_missing", "shared_email_enabled", "shared_ip_enabled",
    )  # fmt: skip

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.errors: dict[str, str] = {}

    @classmethod
    def blank(cls) -> IncentiveForm:
        return cls.of_spec(
            IncentiveSpec(
                name="x", provider="manual", amount=Decimal(10), currency="USD",
                email_subject=DEFAULT_SUBJECT, email_body=DEFAULT_BODY,
            ),
            name="",
        )  # fmt: skip

    @classmethod
    def of_spec(cls, spec: IncentiveSpec, **overrides: Any) -> IncentiveForm:
        rules = spec.fraud_rules

        def stamp(value: datetime | None) -> str:
            return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M") if value else ""

        values: dict[str, Any] = {
            "name": spec.name, "description": spec.description, "provider": spec.provider,
            "gift_code_pool_id": spec.gift_code_pool_id or "",
            "tango_account_id": spec.tango_account_id or "", "utid": spec.utid or "",
            "amount": spec.amount or "", "currency": spec.currency or "",
            "reward_name": spec.reward_name or "", "approval_mode": spec.approval_mode,
            "max_rewards": spec.max_rewards or "", "budget": spec.budget or "",
            "opens_at": stamp(spec.opens_at), "closes_at": stamp(spec.closes_at),
            "email_subject": spec.email_subject, "email_body": spec.email_body,
            "redemption_instructions": spec.redemption_instructions,
            "low_stock_threshold": spec.low_stock_threshold,
            "alert_emails": ", ".join(spec.alert_emails),
            "participant_id_field": rules.participant_id_field or "",
            "active": spec.active,
            "recaptcha_enabled": rules.recaptcha.enabled,
            "recaptcha_threshold": rules.recaptcha.threshold,
            "duplicate_enabled": rules.relevant_id_duplicate.enabled,
            "duplicate_threshold": rules.relevant_id_duplicate.threshold,
            "fraud_enabled": rules.relevant_id_fraud.enabled,
            "fraud_threshold": rules.relevant_id_fraud.threshold,
            "ballot_enabled": rules.ballot_box_stuffing.enabled,
            "hold_missing": rules.hold_when_fields_missing,
            "shared_email_enabled": rules.shared_email.enabled,
            "shared_email_threshold": rules.shared_email.threshold,
            "shared_ip_enabled": rules.shared_ip.enabled,
            "shared_ip_threshold": rules.shared_ip.threshold,
        }  # fmt: skip
        values.update(overrides)
        return cls(values)

    @classmethod
    def parse(cls, form: FormData) -> IncentiveForm:
        values: dict[str, Any] = {}
        for name in cls.TEXT:
            raw = form.get(name)
            values[name] = raw.strip() if isinstance(raw, str) else ""
        for name in cls.FLAGS:
            values[name] = form.get(name) in ("on", "true", "1")
        return cls(values)

    def _number(self, name: str, kind: type = Decimal) -> Any:
        raw = self.values.get(name) or ""
        if raw == "":
            return None
        try:
            value = kind(str(raw))
        except (InvalidOperation, ValueError):
            self.errors[name] = "Enter a number."
            return None
        # float() and Decimal() accept "nan" and "inf", which no amount or threshold can be.
        if isinstance(value, Decimal) and not value.is_finite():
            self.errors[name] = "Enter a number."
            return None
        if isinstance(value, float) and not math.isfinite(value):
            self.errors[name] = "Enter a number."
            return None
        return value

    def _threshold(self, name: str, default: float, low: float, high: float | None = None) -> float:
        """A score threshold: blank is ``default``; 0 is a threshold like any other."""
        value = self._number(name, float)
        if value is None:
            return default
        if value < low or (high is not None and value > high):
            self.errors[name] = (
                f"Enter a number from {low:g} to {high:g}."
                if high is not None
                else f"Enter a number of at least {low:g}."
            )
        return float(value)

    def _count(self, name: str, default: int) -> int:
        """A count: blank is ``default``; the spec's bounds judge the rest (0 included)."""
        value = self._number(name, int)
        return default if value is None else int(value)

    def _when(self, name: str) -> datetime | None:
        raw = self.values.get(name) or ""
        if not raw:
            return None
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            self.errors[name] = "Enter a date and time."
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    def data(self) -> dict[str, Any]:
        v = self.values
        rules = {
            "recaptcha": {
                "enabled": v["recaptcha_enabled"],
                "threshold": self._threshold(
                    "recaptcha_threshold", _RULES.recaptcha.threshold, 0, 1
                ),
            },
            "relevant_id_duplicate": {
                "enabled": v["duplicate_enabled"],
                "threshold": self._threshold(
                    "duplicate_threshold", _RULES.relevant_id_duplicate.threshold, 0, 100
                ),
            },
            "relevant_id_fraud": {
                "enabled": v["fraud_enabled"],
                # Qualtrics' fraud score has no stated maximum (0–100+).
                "threshold": self._threshold(
                    "fraud_threshold", _RULES.relevant_id_fraud.threshold, 0
                ),
            },
            "ballot_box_stuffing": {"enabled": v["ballot_enabled"]},
            "hold_when_fields_missing": v["hold_missing"],
            "shared_email": {
                "enabled": v["shared_email_enabled"],
                "threshold": self._count("shared_email_threshold", _RULES.shared_email.threshold),
            },
            "shared_ip": {
                "enabled": v["shared_ip_enabled"],
                "threshold": self._count("shared_ip_threshold", _RULES.shared_ip.threshold),
            },
            "participant_id_field": v["participant_id_field"] or None,
        }
        provider = v["provider"] or "manual"
        return {
            "name": v["name"],
            "description": v["description"],
            "active": v["active"],
            "provider": provider,
            "gift_code_pool_id": (
                self._number("gift_code_pool_id", int) if provider == "gift_codes" else None
            ),
            "tango_account_id": (
                self._number("tango_account_id", int) if provider == "tango" else None
            ),
            "utid": (v["utid"] or None) if provider == "tango" else None,
            "amount": self._number("amount"),
            "currency": v["currency"] or None,
            "reward_name": v["reward_name"] or None,
            "approval_mode": v["approval_mode"] or "review_suspicious",
            "max_rewards": self._number("max_rewards", int),
            "budget": self._number("budget"),
            "opens_at": self._when("opens_at"),
            "closes_at": self._when("closes_at"),
            "email_subject": v["email_subject"] or DEFAULT_SUBJECT,
            "email_body": v["email_body"] or DEFAULT_BODY,
            "redemption_instructions": v["redemption_instructions"],
            "low_stock_threshold": self._count("low_stock_threshold", _LOW_STOCK_DEFAULT),
            "alert_emails": [e for e in re.split(r"[\s,;]+", v["alert_emails"]) if e],
            "fraud_rules": rules,
        }

    def spec(self) -> IncentiveSpec | None:
        data = self.data()
        if self.errors:
            return None
        try:
            return IncentiveSpec.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors():
                location = [str(p) for p in error["loc"]]
                field = location[0] if location else "__all__"
                if field == "fraud_rules" and len(location) > 1:
                    field = {
                        "recaptcha": "recaptcha_threshold",
                        "relevant_id_duplicate": "duplicate_threshold",
                        "relevant_id_fraud": "fraud_threshold",
                        "shared_email": "shared_email_threshold",
                        "shared_ip": "shared_ip_threshold",
                    }.get(location[1], "__all__")
                if field not in self.values:
                    field = "__all__"
                message = str(error["msg"]).removeprefix("Value error, ")
                self.errors.setdefault(field, message)
            return None


def _form_page(
    request: Request,
    principal: Principal,
    runtime: IncentivesRuntime,
    form: IncentiveForm,
    *,
    incentive: Incentive | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request, "incentives/edit.html", principal=principal, nav="incentives", form=form,
        values=form.values, errors=form.errors, incentive=incentive,
        pools=runtime.manager.pools(), tango_accounts=runtime.manager.tango_accounts(),
        variables=TEMPLATE_VARIABLES, blank_means=_BLANK_MEANS, status_code=status_code,
    )  # fmt: skip


#: What a link may fill in on a new incentive's form (e.g. "use this catalog item").
_PREFILLED = ("provider", "tango_account_id", "utid", "amount", "currency", "reward_name")


@router.get("/incentives/new", name="ui_incentive_new")
def new_incentive(request: Request, principal: Manager, runtime: Runtime) -> Response:
    form = IncentiveForm.blank()
    form.values.update(
        {name: request.query_params[name] for name in _PREFILLED if request.query_params.get(name)}
    )
    return _form_page(request, principal, runtime, form)


@router.post("/incentives/new", name="ui_incentive_create", dependencies=[CsrfChecked])
async def create_incentive(request: Request, principal: Manager, runtime: Runtime) -> Response:
    form = IncentiveForm.parse(await request.form())
    spec = form.spec()
    if spec is None:
        return _form_page(request, principal, runtime, form, status_code=400)
    try:
        incentive = await runtime.manager.create(spec, actor=principal.email)
    except IncentiveError as exc:
        form.errors["__all__"] = str(exc)
        return _form_page(request, principal, runtime, form, status_code=400)
    response = _redirect(request, "ui_incentive", reference=incentive.reference_id)
    flash.add(request, response, "success", f"Incentive {incentive.reference_id} created.")
    return response


@router.get("/incentives/review-queue", name="ui_reward_queue")
def reward_queue(
    request: Request, principal: Viewer, db: Db, incentive: str | None = None
) -> Response:
    query = (
        select(Reward, Incentive)
        .options(WITHOUT_DELIVERY)
        .join(Incentive, Incentive.id == Reward.incentive_id)
        .where(Reward.status == "held")
        .order_by(Reward.created_at, Reward.id)
        .limit(500)
    )
    chosen = None
    if incentive:
        chosen = _incentive_or_404(request, db, incentive)
        query = query.where(Reward.incentive_id == chosen.id)
    rows = db.execute(query).all()
    total = db.scalar(select(func.count()).select_from(Reward).where(Reward.status == "held")) or 0
    return render(
        request, "incentives/queue.html", principal=principal, nav="reward_queue", rows=rows,
        total=total, chosen=chosen,
    )  # fmt: skip


@router.post("/incentives/review-queue", name="ui_reward_queue_act", dependencies=[CsrfChecked])
async def reward_queue_act(request: Request, principal: Manager, runtime: Runtime) -> Response:
    form = await request.form()
    action = str(form.get("action") or "")
    references = [str(value) for value in form.getlist("reward") if str(value).strip()]
    reason = str(form.get("reason") or "").strip()
    back = safe_next(str(form.get("back") or ""), request.url_for("ui_reward_queue").path)
    response = RedirectResponse(back, status_code=303)
    if not references:
        flash.add(request, response, "warning", "Select at least one reward first.")
        return response
    service = runtime.service
    if action == "release":
        results = await asyncio.to_thread(
            service.release, references, actor=principal.email, note=reason
        )
        runtime.fulfiller.wake()
        _flash_results(request, response, results, "Released")
    elif action == "block":
        results = await asyncio.to_thread(
            service.block, references, actor=principal.email, reason=reason
        )
        _flash_results(request, response, results, "Blocked")
    else:
        flash.add(request, response, "error", f"Unknown action {action!r}.")
    return response


@router.get("/incentives/providers", name="ui_incentive_providers")
def providers_page(request: Request, principal: Viewer, runtime: Runtime) -> Response:
    pools = [(pool, runtime.manager.pool_stock(pool.id)) for pool in runtime.manager.pools()]
    accounts = [
        (a, mask(a.platform_key), shown_base_url(a.base_url))
        for a in runtime.manager.tango_accounts()
    ]
    return render(
        request, "incentives/providers.html", principal=principal, nav="incentives",
        pools=pools, accounts=accounts, low_stock=runtime.manager.low_stock(),
    )  # fmt: skip


@router.post("/incentives/providers/pools", name="ui_pool_create", dependencies=[CsrfChecked])
async def create_pool(request: Request, principal: Manager, runtime: Runtime) -> Response:
    form = await request.form()
    response = _redirect(request, "ui_incentive_providers")
    try:
        pool = runtime.manager.create_pool(
            str(form.get("name") or ""), str(form.get("description") or "")
        )
        flash.add(request, response, "success", f"Pool “{pool.name}” created (id {pool.id}).")
    except IncentiveError as exc:
        flash.add(request, response, "error", str(exc))
    return response


@router.post(
    "/incentives/providers/pools/{pool_id}/codes", name="ui_pool_import", dependencies=[CsrfChecked]
)
async def import_codes(
    request: Request, principal: Manager, runtime: Runtime, pool_id: int
) -> Response:
    form = await request.form()
    upload = form.get("file")
    response = _redirect(request, "ui_incentive_providers")
    if upload is None or isinstance(upload, str):
        flash.add(request, response, "error", "Choose a CSV file (code,value,currency,expiry).")
        return response
    raw = await upload.read(MAX_IMPORT_BYTES + 1)
    await form.close()  # the upload's temporary file
    if len(raw) > MAX_IMPORT_BYTES:
        flash.add(
            request, response, "error", f"The CSV is larger than {MAX_IMPORT_MB} MB; split it."
        )
        return response
    try:
        report = await asyncio.to_thread(runtime.manager.import_codes, pool_id, raw.decode("utf-8"))
    except UnicodeDecodeError:
        flash.add(request, response, "error", "The file is not UTF-8 text.")
        return response
    except (IncentiveError, LookupError) as exc:
        flash.add(request, response, "error", str(exc))
        return response
    flash.add(
        request, response, "success",
        f"Imported {report.imported} code(s); {report.duplicates} duplicate(s) skipped.",
    )  # fmt: skip
    shown, rest = _within_room(report.errors, FLASH_ROOM - 1)  # after the count above
    for error in shown:
        flash.add(request, response, "error", f"Rejected {error}")
    if rest:
        flash.add(
            request, response, "error",
            f"{len(rest)} more line(s) rejected: import the file with the API or "
            "'qualflow incentives pools import' to list every reason.",
        )  # fmt: skip
    return response


@router.get("/incentives/providers/tango/{account_id}/catalog", name="ui_tango_catalog")
async def tango_catalog_page(
    request: Request, principal: Viewer, runtime: Runtime, account_id: int
) -> Response:
    account = next((a for a in runtime.manager.tango_accounts() if a.id == account_id), None)
    if account is None:
        raise UiNotFound(
            f"Tango account {account_id}",
            request.url_for("ui_incentive_providers").path,
            "Back to providers",
        )
    items, problem = [], None
    try:
        items = await runtime.manager.tango_catalog(account_id)
    except TangoError as exc:
        problem = str(exc)
    return render(
        request, "incentives/catalog.html", principal=principal, nav="incentives",
        account=account, items=items, problem=problem, status_code=502 if problem else 200,
    )  # fmt: skip


@router.post("/incentives/providers/tango", name="ui_tango_create", dependencies=[CsrfChecked])
async def create_tango(request: Request, principal: Manager, runtime: Runtime) -> Response:
    form = await request.form()
    response = _redirect(request, "ui_incentive_providers")
    try:
        account = runtime.manager.create_tango_account(
            **{
                name: str(form.get(name) or "")
                for name in (
                    "name",
                    "base_url",
                    "platform_name",
                    "platform_key",
                    "customer_id",
                    "account_id",
                )
            }
        )
        flash.add(request, response, "success", f"Tango account “{account.name}” added.")
    except IncentiveError as exc:
        flash.add(request, response, "error", str(exc))
    return response


# -- platform API keys ---------------------------------------------------------------------------


@router.get("/incentives/api-keys", name="ui_api_keys")
def api_keys_page(request: Request, principal: KeyViewer, db: Db) -> Response:
    keys = api_keys.list_keys(db)
    platforms: dict[str, list[Any]] = {}
    for key, platform in keys:
        platforms.setdefault(platform, []).append(key)
    audit = {
        key.id: db.scalars(
            select(ApiKeyAudit)
            .where(ApiKeyAudit.key_id == key.id)
            .order_by(ApiKeyAudit.id.desc())
            .limit(5)
        ).all()
        for key, _platform in keys
    }
    return render(
        request, "incentives/api_keys.html", principal=principal, nav="api_keys",
        platforms=platforms, audit=audit, max_active=api_keys.MAX_ACTIVE_KEYS,
    )  # fmt: skip


@router.post("/incentives/api-keys", name="ui_api_key_create", dependencies=[CsrfChecked])
async def create_api_key(request: Request, principal: KeyManager, db: Db) -> Response:
    form = await request.form()
    response = _redirect(request, "ui_api_keys")
    try:
        key, _raw = api_keys.create_key(
            db, platform=str(form.get("platform") or ""),
            display_name=str(form.get("display_name") or ""), actor=principal.email,
        )  # fmt: skip
        db.commit()
        flash.add(
            request, response, "success",
            f"Key “{key.display_name}” created. Reveal it to copy it into your workflow.",
        )  # fmt: skip
    except api_keys.ApiKeyError as exc:
        db.rollback()
        flash.add(request, response, "error", str(exc))
    return response


@router.post(
    "/incentives/api-keys/{key_id}/rename", name="ui_api_key_rename", dependencies=[CsrfChecked]
)
async def rename_api_key(request: Request, principal: KeyManager, db: Db, key_id: int) -> Response:
    form = await request.form()
    response = _redirect(request, "ui_api_keys")
    try:
        api_keys.rename_key(db, key_id, str(form.get("display_name") or ""), actor=principal.email)
        db.commit()
        flash.add(request, response, "success", "Key renamed.")
    except (api_keys.ApiKeyError, api_keys.KeyNotFound) as exc:
        flash.add(request, response, "error", str(exc))
    return response


@router.post(
    "/incentives/api-keys/{key_id}/deactivate",
    name="ui_api_key_deactivate",
    dependencies=[CsrfChecked],
)
def deactivate_api_key(request: Request, principal: KeyManager, db: Db, key_id: int) -> Response:
    response = _redirect(request, "ui_api_keys")
    try:
        key = api_keys.deactivate_key(db, key_id, actor=principal.email)
        db.commit()
        flash.add(request, response, "success", f"Key “{key.display_name}” deactivated for good.")
    except (api_keys.ApiKeyError, api_keys.KeyNotFound) as exc:
        flash.add(request, response, "error", str(exc))
    return response


@router.post(
    "/incentives/api-keys/{key_id}/reveal", name="ui_api_key_reveal", dependencies=[CsrfChecked]
)
def reveal_api_key(request: Request, principal: KeyViewer, db: Db, key_id: int) -> Response:
    try:
        platform, key = api_keys.reveal_key(db, key_id, actor=principal.email)
        db.commit()
    except (api_keys.ApiKeyError, api_keys.KeyNotFound) as exc:
        return render_fragment(
            request, "incentives/_revealed.html", principal=principal, error=str(exc)
        )
    response = render_fragment(
        request, "incentives/_revealed.html", principal=principal, platform=platform, key=key,
        key_id=key_id,
    )  # fmt: skip
    response.headers["Cache-Control"] = "no-store"
    return response


# -- rewards -----------------------------------------------------------------------------------


@router.get("/incentives/rewards/{reference}", name="ui_reward")
def reward_page(request: Request, principal: Viewer, db: Db, reference: str) -> Response:
    try:
        reward = get_reward(db, reference)
    except RewardNotFound:
        raise UiNotFound(
            f"Reward {reference}", request.url_for("ui_reward_queue").path, "Back to the queue"
        ) from None
    incentive = db.get(Incentive, reward.incentive_id)
    transitions = db.scalars(
        select(RewardTransition)
        .where(RewardTransition.reward_id == reward.id)
        .order_by(RewardTransition.id)
    ).all()
    return render(
        request, "incentives/reward.html", principal=principal, nav="incentives", reward=reward,
        incentive=incentive, transitions=transitions,
        amount=from_minor(reward.amount_minor, reward.currency),
    )  # fmt: skip


@router.post(
    "/incentives/rewards/{reference}/{action}", name="ui_reward_act", dependencies=[CsrfChecked]
)
async def reward_act(
    request: Request, principal: Manager, runtime: Runtime, reference: str, action: str
) -> Response:
    form = await request.form()
    reason = str(form.get("reason") or "").strip()
    response = _redirect(request, "ui_reward", reference=reference)
    service = runtime.service
    actor = principal.email
    try:
        if action == "release":
            results = await asyncio.to_thread(
                service.release, [reference], actor=actor, note=reason
            )
        elif action == "block":
            results = await asyncio.to_thread(
                service.block, [reference], actor=actor, reason=reason
            )
        elif action == "cancel":
            results = await asyncio.to_thread(
                service.cancel, [reference], actor=actor, reason=reason
            )
        elif action == "retry":
            results = await asyncio.to_thread(service.retry, [reference], actor=actor)
        elif action == "mark-paid":
            results = await asyncio.to_thread(service.mark_paid, [reference], actor=actor)
        elif action == "resend":
            email = str(form.get("email") or "").strip() or None
            resent = await service.resend(reference, actor=actor, new_email=email)
            # "sent" when it is the reward's first email (it had waited, or been refused).
            verb = "sent" if resent.first else "resent"
            flash.add(request, response, "success", f"Email {verb} to {email or 'the respondent'}.")
            return response
        else:
            flash.add(request, response, "error", f"Unknown action {action!r}.")
            return response
    except (RewardNotFound, TransitionError, ValueError, RewardFailed) as exc:
        flash.add(request, response, "error", getattr(exc, "reason", None) or str(exc))
        return response
    runtime.fulfiller.wake()
    verbs = {"release": "Released", "block": "Blocked", "cancel": "Cancelled", "retry": "Retrying",
             "mark-paid": "Marked paid"}  # fmt: skip
    _flash_results(request, response, results, verbs[action])
    return response


# -- one incentive (after the fixed paths above) ------------------------------------------------


@router.get("/incentives/{reference}", name="ui_incentive")
def incentive_page(
    request: Request,
    principal: Viewer,
    db: Db,
    runtime: Runtime,
    reference: str,
    status: str | None = None,
    page: str | None = None,
) -> Response:
    incentive = _incentive_or_404(request, db, reference)
    chosen = status if status in REWARD_STATUSES else None
    number = max(int(page), 1) if page and page.isdigit() else 1
    # Past the last row any database can hold: the same empty page, not an offset it refuses.
    number = min(number, MAX_ID // PAGE_SIZE + 1)
    conditions: list[Any] = [Reward.incentive_id == incentive.id]
    if chosen:
        conditions.append(Reward.status == chosen)
    rewards = db.scalars(
        select(Reward)
        .options(WITHOUT_DELIVERY)
        .where(*conditions)
        .order_by(Reward.created_at.desc(), Reward.id.desc())
        .limit(PAGE_SIZE)
        .offset((number - 1) * PAGE_SIZE)
    ).all()
    by_status = dict(
        db.execute(
            select(Reward.status, func.count())
            .where(Reward.incentive_id == incentive.id)
            .group_by(Reward.status)
        ).all()
    )
    # The tabs' counts already say how many there are: no second COUNT of the rewards.
    total = by_status.get(chosen, 0) if chosen else sum(by_status.values())

    def query(**overrides: object) -> str:
        values = {"status": chosen, "page": number if number > 1 else None, **overrides}
        return urlencode({k: v for k, v in values.items() if v not in (None, "")})

    budget = (
        format_money(incentive.budget_minor, incentive.currency)
        if incentive.budget_minor is not None
        else None
    )
    return render(
        request, "incentives/detail.html", principal=principal, nav="incentives",
        incentive=incentive, rewards=rewards, total=total, by_status=by_status, status=chosen,
        statuses=REWARD_STATUSES, page=number, has_next=number * PAGE_SIZE < total, query=query,
        rules=FraudRules.model_validate(incentive.fraud_rules or {}),
        budget=budget,
        committed=format_money(incentive.committed_minor, incentive.currency),
        platform_url=platform_reward_url(request, incentive.reference_id),
        alerts=alerts_of(incentive),
        test_automations=automations_using(runtime.factory, incentive.reference_id),
    )  # fmt: skip


def alerts_of(incentive: Incentive) -> str:
    """What this incentive emails about, and to whom (the Alerts line of its page)."""
    kinds = {
        "gift_codes": [f"below {incentive.low_stock_threshold} codes", "out of codes"],
        "tango": ["rewards held for Tango funds"],
    }.get(incentive.provider, [])
    if incentive.max_rewards is not None or incentive.budget_minor is not None:
        kinds.append("a limit reached")
    if not kinds:
        return "none (no limits)"
    to = ", ".join(incentive.alert_emails or []) or "everyone with Manage on incentives"
    return f"{', '.join(kinds)}; to {to}"


def platform_reward_url(request: Request, reference: str) -> str:
    """Where a Qualtrics Web Service task (or any system) requests this incentive's rewards."""
    base = get_store(request).settings.public_base_url.rstrip("/")
    return f"{base}/api/v1/incentives/{reference}/rewards"


@router.get("/incentives/{reference}/review", name="ui_incentive_review")
async def incentive_review(
    request: Request, principal: Viewer, runtime: Runtime, reference: str
) -> Response:
    """The configuration review (an htmx fragment: it calls Qualtrics and the provider)."""
    try:
        # The whole review, not the REST shape: the page also says what each anonymous-link
        # answer rests on.
        review = await load_review(runtime, reference)
    except Exception as exc:  # shown in place of the panel
        return render_fragment(
            request,
            "incentives/_review.html",
            principal=principal,
            error=getattr(exc, "message", str(exc)),
        )
    return render_fragment(request, "incentives/_review.html", principal=principal, review=review)


@router.post("/incentives/{reference}/test", name="ui_incentive_test", dependencies=[CsrfChecked])
async def incentive_test(
    request: Request, principal: Manager, runtime: Runtime, reference: str
) -> Response:
    """Send a test reward (an htmx fragment with each step's outcome; nobody is paid)."""
    form = await request.form()
    automation = str(form.get("automation_id") or "").strip()
    if automation and not (automation.isdigit() and 0 < int(automation) <= MAX_ID):
        return render_fragment(
            request, "incentives/_test.html", principal=principal,
            error="choose one of the automations listed, or leave the choice empty",
        )  # fmt: skip
    try:
        body = TestRewardIn(
            automation_id=int(automation) if automation else None,
            response_id=str(form.get("response_id") or "").strip() or None,
            email=str(form.get("email") or "").strip() or None,
            first_name=str(form.get("first_name") or "").strip() or None,
        )
    except ValidationError as exc:
        return render_fragment(
            request, "incentives/_test.html", principal=principal, error=describe_errors(exc)
        )
    try:
        report = await run_test_reward(
            runtime, reference.upper(), body, default_send_to=principal.email
        )
    except Exception as exc:
        return render_fragment(
            request,
            "incentives/_test.html",
            principal=principal,
            error=getattr(exc, "message", str(exc)),
        )
    return render_fragment(request, "incentives/_test.html", principal=principal, report=report)


@router.get("/incentives/{reference}/edit", name="ui_incentive_edit")
def edit_incentive(
    request: Request, principal: Manager, db: Db, runtime: Runtime, reference: str
) -> Response:
    incentive = _incentive_or_404(request, db, reference)
    form = IncentiveForm.of_spec(spec_of(incentive))
    return _form_page(request, principal, runtime, form, incentive=incentive)


@router.post("/incentives/{reference}/edit", name="ui_incentive_update", dependencies=[CsrfChecked])
async def update_incentive(
    request: Request, principal: Manager, db: Db, runtime: Runtime, reference: str
) -> Response:
    incentive = _incentive_or_404(request, db, reference)
    form = IncentiveForm.parse(await request.form())
    form.values["provider"] = incentive.provider  # the provider of an incentive is fixed
    spec = form.spec()
    if spec is None:
        return _form_page(request, principal, runtime, form, incentive=incentive, status_code=400)
    patch = IncentivePatch.model_validate(spec.model_dump(exclude={"provider"}))
    try:
        _saved, warnings = await runtime.manager.update_with_warnings(
            incentive.reference_id, patch, actor=principal.email
        )
    except IncentiveError as exc:
        form.errors["__all__"] = str(exc)
        return _form_page(request, principal, runtime, form, incentive=incentive, status_code=400)
    response = _redirect(request, "ui_incentive", reference=incentive.reference_id)
    flash.add(request, response, "success", "Incentive saved.")
    for warning in warnings:
        flash.add(request, response, "warning", warning[:1].upper() + warning[1:] + ".")
    return response


@router.post(
    "/incentives/{reference}/delete", name="ui_incentive_delete", dependencies=[CsrfChecked]
)
def delete_incentive(
    request: Request, principal: Manager, runtime: Runtime, reference: str
) -> Response:
    try:
        runtime.manager.delete(reference)
    except InUse as exc:
        response = _redirect(request, "ui_incentive", reference=reference.upper())
        flash.add(request, response, "error", str(exc))
        return response
    except IncentiveNotFound as exc:
        response = _redirect(request, "ui_incentives")
        flash.add(request, response, "error", str(exc))
        return response
    response = _redirect(request, "ui_incentives")
    flash.add(request, response, "success", f"Incentive {reference.upper()} deleted.")
    return response
