"""The reward lifecycle: which moves are allowed, and recording each one with who and why.

::

    pending ──► held ──► approved ──► ordered ──► sent
       │          │  ▲       │  │         │
       │          ▼  └───────┘  ▼         ▼
       └──► blocked / cancelled   failed ──► approved (retry)

Every move is a conditional UPDATE on the current status, so two processes racing on one
reward cannot both move it; the loser sees ``False`` and re-reads.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, Update, bindparam, insert, or_, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from qualflow.incentives.models import Incentive, Reward, RewardTransition
from qualflow.incentives.money import format_money
from qualflow.store.base import utcnow

ALLOWED: dict[str, frozenset[str]] = {
    "pending": frozenset({"held", "approved", "blocked", "cancelled"}),
    "held": frozenset({"approved", "blocked", "cancelled"}),
    "approved": frozenset({"ordered", "held", "failed", "cancelled"}),
    "ordered": frozenset({"sent", "cancelled", "failed"}),
    "failed": frozenset({"approved", "cancelled"}),
    "sent": frozenset(),
    "blocked": frozenset(),
    "cancelled": frozenset(),
}

SYSTEM = "qualflow"

#: Where a transaction's statements run: a session, or (the hot path: no ORM session
#: overhead) a plain connection.
Db = Session | Connection

# The hot-path statements are built once (per set of columns) and bound with parameters:
# building and cache-keying an ORM statement per call cost more CPU than running it.
_REWARDS: Table = Reward.__table__  # type: ignore[assignment]
_INCENTIVES: Table = Incentive.__table__  # type: ignore[assignment]
_TRANSITIONS: Table = RewardTransition.__table__  # type: ignore[assignment]
_INSERT_TRANSITION = insert(_TRANSITIONS)
_TRANSITION_COLUMNS = ("reward_id", "from_status", "to_status", "actor", "reason", "at")
# Several rows: one INSERT of as many VALUES rows, built once per count (an executemany is one
# INSERT per row with psycopg; SQLAlchemy's "insertmanyvalues" renders its SQL every time, and
# its insert().values([...]) is compiled every time: it has no cache key).
_INSERT_TRANSITIONS: dict[int, Any] = {}


def _insert_rows(count: int) -> Any:
    statement = _INSERT_TRANSITIONS.get(count)
    if statement is None:
        rows = ", ".join(
            "(" + ", ".join(f":{name}_{n}" for name in _TRANSITION_COLUMNS) + ")"
            for n in range(count)
        )
        statement = text(
            f"INSERT INTO reward_transitions ({', '.join(_TRANSITION_COLUMNS)}) VALUES {rows}"
        ).bindparams(
            *(
                bindparam(f"{name}_{n}", type_=_TRANSITIONS.c[name].type)
                for n in range(count)
                for name in _TRANSITION_COLUMNS
            )
        )
        _INSERT_TRANSITIONS[count] = statement
    return statement


_MOVES: dict[tuple[str, ...], Update] = {}


def _move_statement(columns: tuple[str, ...]) -> Update:
    statement = _MOVES.get(columns)
    if statement is None:
        statement = (
            update(_REWARDS)
            .where(_REWARDS.c.id == bindparam("m_id"), _REWARDS.c.status == bindparam("m_from"))
            .values(
                status=bindparam("m_to"),
                updated_at=bindparam("m_now"),
                **{name: bindparam(f"v_{name}") for name in columns},
            )
        )
        _MOVES[columns] = statement
    return statement


_RESERVE = (
    update(_INCENTIVES)
    .where(
        _INCENTIVES.c.id == bindparam("i_id"),
        or_(
            _INCENTIVES.c.max_rewards.is_(None),
            _INCENTIVES.c.committed_count < _INCENTIVES.c.max_rewards,
        ),
        or_(
            _INCENTIVES.c.budget_minor.is_(None),
            _INCENTIVES.c.committed_minor + bindparam("i_amount") <= _INCENTIVES.c.budget_minor,
        ),
    )
    .values(
        committed_count=_INCENTIVES.c.committed_count + 1,
        committed_minor=_INCENTIVES.c.committed_minor + bindparam("i_amount"),
    )
)


_LIMITS = select(
    _INCENTIVES.c.max_rewards,
    _INCENTIVES.c.committed_count,
    _INCENTIVES.c.budget_minor,
    _INCENTIVES.c.committed_minor,
    _INCENTIVES.c.currency,
).where(_INCENTIVES.c.id == bindparam("i_id"))


class TransitionError(Exception):
    """A move the lifecycle does not allow (e.g. releasing a reward that was already sent)."""


def check_move(from_status: str, to_status: str) -> None:
    if to_status not in ALLOWED.get(from_status, frozenset()):
        raise TransitionError(f"a reward that is {from_status} cannot become {to_status}")


def move(
    session: Db,
    reward: Reward,
    to_status: str,
    *,
    actor: str,
    reason: str = "",
    journal: list[dict[str, Any]] | None = None,
    deferred: Deferred | None = None,
    **values: Any,
) -> bool:
    """Move ``reward`` from its current status to ``to_status`` inside the caller's transaction.

    Returns False (and changes nothing) when another process moved it first. ``values`` are
    further columns to set in the same UPDATE. With ``journal``, the transition row is
    appended to it for :func:`write_transitions` (one INSERT for all of a transaction's moves)
    instead of being inserted now. With ``deferred`` (only for a reward created in this very
    transaction: nobody else can have moved it), the UPDATE is deferred too.
    """
    from_status = reward.status
    check_move(from_status, to_status)
    now = utcnow()
    params = {"m_id": reward.id, "m_from": from_status, "m_to": to_status, "m_now": now}
    params.update({f"v_{name}": value for name, value in values.items()})
    statement = _move_statement(tuple(sorted(values)))
    if deferred is not None:
        deferred.add(statement, params)
    elif getattr(session.execute(statement, params), "rowcount", 0) != 1:
        return False
    row = transition(reward.id, from_status, to_status, actor=actor, reason=reason, at=now)
    if journal is not None:
        journal.append(row)
    else:
        session.execute(_INSERT_TRANSITION, row)
    # The UPDATE above wrote these; mirror them on the instance without marking it dirty (a
    # plain setattr would make the session flush the same columns again).
    set_committed_value(reward, "status", to_status)
    set_committed_value(reward, "updated_at", now)
    for key, value in values.items():
        set_committed_value(reward, key, value)
    return True


def transition(
    reward_id: int,
    from_status: str | None,
    to_status: str,
    *,
    actor: str,
    reason: str = "",
    at: datetime | None = None,
) -> dict[str, Any]:
    """A transition row's values (for :func:`write_transitions`)."""
    return {
        "reward_id": reward_id, "from_status": from_status, "to_status": to_status,
        "actor": actor[:320], "reason": reason, "at": at or utcnow(),
    }  # fmt: skip


def write_transitions(
    session: Db, journal: list[dict[str, Any]], deferred: Deferred | None = None
) -> None:
    """Insert a transaction's transition rows (in the order of the moves) with one statement
    (now, or with the ``deferred`` writes)."""
    if len(journal) == 1:
        statement, params = _INSERT_TRANSITION, journal[0]
    elif journal:
        statement = _insert_rows(len(journal))
        params = {f"{key}_{n}": v for n, row in enumerate(journal) for key, v in row.items()}
    else:
        return
    if deferred is not None:
        deferred.add(statement, params)
    else:
        session.execute(statement, params)
    journal.clear()


# --- limits -------------------------------------------------------------------------------------


#: How a reward held by the incentive's limits states its reason (the limit alert looks for it).
LIMIT_REACHED = "limit reached"
BUDGET_EXHAUSTED = "budget exhausted"


def reserve(session: Db, incentive: Incentive, amount_minor: int) -> str | None:
    """Count one reward of ``amount_minor`` against the incentive's max rewards and budget.

    Atomic (a conditional UPDATE of the incentive row), so concurrent rewards can never
    overshoot a limit. Returns None when reserved, else the reason it could not be.
    """
    result = session.execute(_RESERVE, {"i_id": incentive.id, "i_amount": amount_minor})
    if getattr(result, "rowcount", 0) == 1:
        return None
    # Refused: why, from the limits and counters as they are now (the instance may be a
    # snapshot that no session loaded).
    row = session.execute(_LIMITS, {"i_id": incentive.id}).one()
    max_rewards, count, budget, committed, currency = row
    if max_rewards is not None and count >= max_rewards:
        return f"{LIMIT_REACHED}: {count} of {max_rewards} rewards already committed"
    if budget is not None:
        return (
            f"{BUDGET_EXHAUSTED}: {format_money(committed, currency)} of "
            f"{format_money(budget, currency)} committed, this reward "
            f"needs {format_money(amount_minor, currency)}"
        )
    return LIMIT_REACHED


# PostgreSQL: the reservation and the COMMIT leave in one write (psycopg's pipeline mode), so the
# incentive's row lock — which every reward of the incentive queues for — is held for the server's
# time alone, never while this process waits for its GIL between the UPDATE and the COMMIT. The
# same conditions as _RESERVE; a refusal must abort the COMMIT sent behind it, so it is an error:
# a cast of the CASE (not a constant, so it is not folded at planning) fails with _REFUSED.
_REFUSED = "reservation refused"
_RESERVE_AND_COMMIT = f"""WITH reserved AS (
    UPDATE incentives
    SET committed_count = committed_count + 1,
        committed_minor = committed_minor + %(amount)s,
        updated_at = %(now)s
    WHERE id = %(id)s
      AND (max_rewards IS NULL OR committed_count < max_rewards)
      AND (budget_minor IS NULL OR committed_minor + %(amount)s <= budget_minor)
    RETURNING 1
)
SELECT CAST(CASE WHEN EXISTS (SELECT FROM reserved) THEN '1' ELSE '{_REFUSED}' END AS integer)"""


class Deferred:
    """Writes of a new reward's transaction whose results nothing reads before its end. On
    PostgreSQL they go in one pipeline with the reservation and the COMMIT
    (:func:`reserve_and_commit`): one round trip for all; else :meth:`run` executes them."""

    def __init__(self) -> None:
        self.statements: list[tuple[Any, dict[str, Any], Callable[[Any], None] | None]] = []

    def add(
        self, statement: Any, params: dict[str, Any], then: Callable[[Any], None] | None = None
    ) -> None:
        """``then`` gets the statement's cursor (or result) once it ran."""
        self.statements.append((statement, params, then))

    def run(self, session: Db) -> None:
        for statement, params, then in self.statements:
            result = session.execute(statement, params)
            if then is not None:
                then(result)
        self.statements.clear()


# SQLAlchemy compiles each statement for the pipeline once per engine (the SQL and its
# parameters' type processing, as it would to execute it: a column's processor may depend on
# the engine, e.g. the secret box of an encrypted one); psycopg sends them.
_PIPELINE_SQL: dict[tuple[int, int, tuple[str, ...]], tuple[Any, Any, Any, dict[str, Any]]] = {}


def _pipeline_sql(
    statement: Any, params: dict[str, Any], dialect: Any
) -> tuple[str, dict[str, Any]]:
    key = (id(statement), id(dialect), tuple(params))
    entry = _PIPELINE_SQL.get(key)
    if entry is None or entry[0] is not statement or entry[1] is not dialect:
        compiled = statement.compile(dialect=dialect, column_keys=list(params))
        processors = {
            name: bind.type.dialect_impl(dialect).bind_processor(dialect)
            for bind, name in compiled.bind_names.items()
        }
        entry = (statement, dialect, compiled, processors)
        if len(_PIPELINE_SQL) >= 256:  # engines come and go (tests): keep it bounded
            _PIPELINE_SQL.clear()
        _PIPELINE_SQL[key] = entry
    compiled, processors = entry[2], entry[3]
    values = compiled.construct_params(params)
    for name, processor in processors.items():
        if processor is not None and name in values:
            values[name] = processor(values[name])
    return compiled.string, values


def reserve_and_commit(
    connection: Connection,
    incentive_id: int,
    amount_minor: int,
    deferred: Deferred | None = None,
) -> bool:
    """PostgreSQL: the ``deferred`` writes, :func:`reserve` and the COMMIT of the connection's
    transaction, in one round trip.

    Returns False when the limits refuse the reward: then nothing was committed and the
    transaction is aborted (the caller rolls it back)."""
    import psycopg

    raw = connection.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    params = {"id": incentive_id, "amount": amount_minor, "now": utcnow()}
    pending = deferred.statements if deferred is not None else []
    compiled = [_pipeline_sql(s, p, connection.dialect) for s, p, _then in pending]
    cursors = []
    try:
        with raw.pipeline():
            for sql, values in compiled:
                cursors.append(raw.execute(sql, values))
            raw.execute(_RESERVE_AND_COMMIT, params)
            raw.commit()
    except psycopg.errors.InvalidTextRepresentation as exc:
        if _REFUSED not in str(exc):
            raise
        return False
    for (_statement, _params, then), cursor in zip(pending, cursors, strict=True):
        if then is not None:
            then(cursor)
    pending.clear()
    return True


_UNRESERVE = (
    update(_INCENTIVES)
    .where(_INCENTIVES.c.id == bindparam("i_id"))
    .values(
        committed_count=_INCENTIVES.c.committed_count - 1,
        committed_minor=_INCENTIVES.c.committed_minor - bindparam("i_amount"),
    )
)


def unreserve(session: Db, incentive_id: int, amount_minor: int) -> None:
    """Give a reward's place back (it was held, blocked, failed or cancelled after counting)."""
    session.execute(_UNRESERVE, {"i_id": incentive_id, "i_amount": amount_minor})


def describe(reward: Reward) -> str:
    """One line on what happened to the reward and what it waits for: the platform API's
    ``message`` and the summary of an ``incentives.send_reward`` step."""
    if reward.status == "held":
        return "held for review: " + "; ".join(reward.reasons or [])
    if reward.status == "sent":
        return f"sent: {format_money(reward.amount_minor, reward.currency)} to {reward.email}"
    if reward.status == "ordered" and reward.provider == "manual" and reward.paid_at is None:
        return "ordered: to be paid by hand, then emailed"
    if reward.status in ("approved", "ordered", "failed") and reward.last_error:
        state = {
            "failed": "failed",
            "approved": "approved, not paid yet",
            "ordered": "ordered, not emailed yet",
        }[reward.status]
        return f"{state}: {reward.last_error}"
    return str(reward.status)
