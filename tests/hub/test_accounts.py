"""People, passwords, tokens, sessions and permission grants (the library layer)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from qualflow.accounts.errors import EmailTaken, InvalidAccountInput, LastAdmin
from qualflow.accounts.models import ApiToken, UiSession
from qualflow.accounts.passwords import (
    generate_password,
    hash_password,
    verify_password,
)
from qualflow.accounts.permissions import MANAGE, NONE, VIEW, Area, Role, effective_grants
from qualflow.accounts.sessions import end_session, resolve_session, start_session
from qualflow.accounts.throttle import SignInThrottle
from qualflow.accounts.tokens import TOKEN_PREFIX, issue_token, resolve_token, revoke_token
from qualflow.accounts.users import (
    authenticate_password,
    create_user,
    delete_user,
    grants_for,
    set_overrides,
    update_user,
)
from qualflow.store.base import utcnow


def test_password_hash_is_argon2_and_verifies() -> None:
    hashed = hash_password("a long passphrase")
    assert hashed.startswith("$argon2id$")
    assert "a long passphrase" not in hashed
    assert verify_password(hashed, "a long passphrase")
    assert not verify_password(hashed, "a long passphrasE")
    assert not verify_password(None, "anything")
    assert not verify_password("not-a-hash", "anything")


def test_generated_passwords_are_long_and_distinct() -> None:
    passwords = {generate_password() for _ in range(20)}
    assert len(passwords) == 20
    assert all(len(p) == 20 for p in passwords)


def test_users_are_created_with_normalised_email_and_policy(db: Session) -> None:
    user = create_user(
        db, email=" Ada@Example.ORG ", name="Ada", role="admin", password="x" * 3 + "abcdefgh"
    )
    assert user.email == "ada@example.org"
    with pytest.raises(EmailTaken):
        create_user(db, email="ada@example.org", name="Ada 2", role="member", password=None)
    with pytest.raises(InvalidAccountInput, match="at least 10 characters"):
        create_user(db, email="b@example.org", name="B", role="member", password="short")
    with pytest.raises(InvalidAccountInput, match="unknown role"):
        create_user(db, email="c@example.org", name="C", role="owner", password=None)
    with pytest.raises(InvalidAccountInput, match="not a valid email"):
        create_user(db, email="no-at-sign", name="D", role="member", password=None)


def test_sign_in_checks_password_and_active_flag(db: Session) -> None:
    create_user(db, email="ada@example.org", name="Ada", role="admin", password="correct horse")
    other = create_user(
        db, email="bob@example.org", name="Bob", role="member", password="battery staple"
    )
    assert authenticate_password(db, "ADA@example.org", "correct horse") is not None
    assert authenticate_password(db, "ada@example.org", "wrong horse!") is None
    assert authenticate_password(db, "nobody@example.org", "correct horse") is None
    update_user(db, other, active=False)
    assert authenticate_password(db, "bob@example.org", "battery staple") is None


def test_last_admin_cannot_be_removed_or_demoted(db: Session) -> None:
    ada = create_user(db, email="ada@example.org", name="Ada", role="admin", password=None)
    with pytest.raises(LastAdmin):
        update_user(db, ada, role="member")
    with pytest.raises(LastAdmin):
        update_user(db, ada, active=False)
    with pytest.raises(LastAdmin):
        delete_user(db, ada)
    create_user(db, email="bob@example.org", name="Bob", role="admin", password=None)
    update_user(db, ada, role="viewer")
    assert ada.role == "viewer"


def test_role_grants_follow_the_documented_table() -> None:
    admin = effective_grants(Role.ADMIN)
    assert set(admin.values()) == {MANAGE}
    manager = effective_grants(Role.MANAGER)
    assert manager[Area.API_KEYS] is VIEW
    assert all(level is MANAGE for area, level in manager.items() if area is not Area.API_KEYS)
    member = effective_grants(Role.MEMBER)
    assert member[Area.AUTOMATIONS] is MANAGE
    assert member[Area.RUNS] is MANAGE
    assert member[Area.CONNECTIONS] is VIEW
    assert member[Area.API_KEYS] is NONE
    viewer = effective_grants(Role.VIEWER)
    assert viewer[Area.API_KEYS] is NONE
    assert all(level is VIEW for area, level in viewer.items() if area is not Area.API_KEYS)


def test_overrides_raise_and_lower_single_areas(db: Session) -> None:
    user = create_user(db, email="m@example.org", name="M", role="member", password=None)
    set_overrides(db, user, {"incentives": "manage", "runs": "none"})
    grants = grants_for(user)
    assert grants[Area.INCENTIVES] is MANAGE
    assert grants[Area.RUNS] is NONE
    assert grants[Area.AUTOMATIONS] is MANAGE
    set_overrides(db, user, {"incentives": None})
    assert grants_for(user)[Area.INCENTIVES] is VIEW
    assert grants_for(user)[Area.RUNS] is MANAGE
    with pytest.raises(InvalidAccountInput, match="unknown permission area"):
        set_overrides(db, user, {"billing": "view"})
    with pytest.raises(InvalidAccountInput, match="unknown permission level"):
        set_overrides(db, user, {"runs": "admin"})


def test_tokens_are_stored_as_hashes_and_can_be_revoked(db: Session) -> None:
    user = create_user(db, email="t@example.org", name="T", role="member", password=None)
    token, raw = issue_token(db, user, "script")
    assert raw.startswith(TOKEN_PREFIX)
    stored = db.scalars(select(ApiToken)).all()
    assert all(raw not in (row.token_hash, row.name) for row in stored)
    assert token.last4 == raw[-4:]
    found, reason = resolve_token(db, raw)
    assert found is not None
    assert found.id == token.id
    assert reason == ""
    assert found.last_used_at is not None
    assert resolve_token(db, raw + "x") == (None, "the API token is not valid")
    revoke_token(db, token)
    assert resolve_token(db, raw) == (None, "the API token has been revoked")


def test_expired_tokens_are_refused(db: Session) -> None:
    user = create_user(db, email="t@example.org", name="T", role="member", password=None)
    with pytest.raises(InvalidAccountInput):
        issue_token(db, user, "old", expires_at=utcnow() - timedelta(seconds=1))
    token, raw = issue_token(db, user, "soon", expires_at=utcnow() + timedelta(days=1))
    token.expires_at = utcnow() - timedelta(seconds=1)
    db.flush()
    assert resolve_token(db, raw) == (None, "the API token has expired")


def test_sessions_expire_and_end(db: Session) -> None:
    user = create_user(db, email="s@example.org", name="S", role="viewer", password=None)
    session, raw = start_session(db, user, max_age=3600, user_agent="pytest")
    assert raw not in session.token_hash
    assert resolve_session(db, raw) is not None
    assert end_session(db, raw)
    assert resolve_session(db, raw) is None
    session, raw = start_session(db, user, max_age=3600)
    session.expires_at = utcnow() - timedelta(seconds=1)
    db.flush()
    assert resolve_session(db, raw) is None


def test_new_password_and_deactivation_end_all_sessions(db: Session) -> None:
    user = create_user(db, email="s@example.org", name="S", role="viewer", password=None)
    start_session(db, user, max_age=3600)
    start_session(db, user, max_age=3600)
    update_user(db, user, password="a brand new pass")
    assert db.scalars(select(UiSession)).all() == []


def test_sign_in_throttle_counts_failures_per_account_and_address() -> None:
    now = [1000.0]
    throttle = SignInThrottle(max_failures=3, window=60, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after("Ada@example.org", "10.0.0.1") is None
        throttle.failed("ada@example.org", "10.0.0.1")
    assert throttle.retry_after("ada@example.org", "10.0.0.1") == 60
    # Another address, or another account, is not affected.
    assert throttle.retry_after("ada@example.org", "10.0.0.2") is None
    assert throttle.retry_after("bob@example.org", "10.0.0.1") is None
    now[0] += 30
    assert throttle.retry_after("ada@example.org", "10.0.0.1") == 30
    now[0] += 30
    assert throttle.retry_after("ada@example.org", "10.0.0.1") is None
    throttle.failed("ada@example.org", "10.0.0.1")
    throttle.succeeded("ada@example.org", "10.0.0.1")
    assert throttle.retry_after("ada@example.org", "10.0.0.1") is None
