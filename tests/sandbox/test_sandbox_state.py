"""Persistence round trip, seeds and the respondents simulator."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from qualflow.sandbox import SandboxState, create_app
from qualflow.sandbox.model import Survey
from qualflow.sandbox.respondents import Profile, Simulator
from qualflow.sandbox.seed import (
    customer_satisfaction,
    employee_pulse,
    panel_signup,
    research_screener,
    seed_builtin,
    seed_generated,
)
from qualflow.sandbox.state import CONTINUATION_TTL
from qualflow.sandbox.tango_state import DEFAULT_ACCOUNT, DEFAULT_CUSTOMER, TangoState

FRAUD = ("Q_RecaptchaScore", "Q_RelevantIDDuplicateScore", "Q_RelevantIDFraudScore")


def test_persistence_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.json"
    state = SandboxState(path=path)
    user, token = state.create_user("keep@example.com")
    client_id, secret = state.add_oauth_client(user.id)
    surveys = seed_builtin(state)
    Simulator(state, surveys[0].id, seed=1).run(25)
    state.add_subscription(
        topics="*", publication_url="http://x.test/h", shared_key="k", owner_id=user.id
    )
    job = state.start_export(surveys[0].id, {"format": "csv", "allowContinuation": True})
    progress = state.export_progress(surveys[0].id, job.id)
    state.record_inbound_event("tok", user.id, {"a": 1})
    state.extra["rewards"] = {"balance": 100}
    pool = state.directory.ensure_default()
    ml = state.directory.create_mailing_list(pool, "Panel", user.id)
    cid, _ = state.directory.add_member(pool, ml, {"email": "p@example.com"})
    dist = state.directory.create_distribution(
        {"action": "CreateDistribution", "surveyId": surveys[0].id, "mailingListId": ml,
         "description": "d"},
        user.id,
        "http://x",
    )  # fmt: skip
    state.save()
    assert not state.dirty

    loaded = SandboxState.load(path)
    assert loaded.user_for_token(token) is not None
    assert loaded.issue_access_token(client_id, secret, None).user_id == user.id
    assert set(loaded.surveys) == {s.id for s in surveys}
    for s in surveys:
        assert loaded.surveys[s.id].to_legacy(0) == s.to_legacy(0)
        assert loaded.surveys[s.id].to_definition("x") == s.to_definition("x")
    assert loaded.response_count(surveys[0].id) == 25
    original = state.responses[surveys[0].id]
    for rid, response in loaded.responses[surveys[0].id].items():
        assert response.values == original[rid].values
    assert len(loaded.subscriptions) == 1
    assert next(iter(loaded.subscriptions.values())).shared_key == "k"
    assert loaded.export_progress(surveys[0].id, job.id)["fileId"] == progress["fileId"]
    assert loaded.continuations == state.continuations
    assert loaded.inbound_events == state.inbound_events
    assert loaded.extra == {"rewards": {"balance": 100}}
    assert loaded.directory.list_members(pool, ml)[0]["contactId"] == cid
    assert loaded.directory.links(dist, surveys[0].id) == state.directory.links(dist, surveys[0].id)
    # New ids continue after the loaded ones (sequence numbers never go back).
    new = loaded.record_response(surveys[0].id, {"QID1": 1})
    assert new.seq > max(r.seq for r in original.values())


def test_a_state_file_of_the_earlier_token_layout_still_loads(tmp_path: Path) -> None:
    """Before tokens expired, a state file kept [survey id, seq] per token, and then the issue
    times beside them; both load, a token without its time counting from the load."""
    state = SandboxState()
    [survey] = seed_generated(state, 1)
    path = tmp_path / "sandbox.json"
    state.save(path)
    data = json.loads(path.read_text())
    data["continuations"] = {"old": [survey.id, 3], "aged": [survey.id, 4]}
    data["continuationIssued"] = {"aged": time.time() - CONTINUATION_TTL - 60}
    path.write_text(json.dumps(data))

    loaded = SandboxState.load(path)
    assert loaded.continuations["old"].upto_seq == 3
    assert not loaded.continuations["old"].expired(time.time())
    assert loaded.continuations["aged"].expired(time.time())
    data["continuations"] = {"bad": {"survey_id": survey.id}}
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="not a sandbox state file"):
        SandboxState.load(path)


def test_load_rejects_garbage(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{nope")
    with pytest.raises(ValueError, match="not a sandbox state file"):
        SandboxState.load(path)
    missing = SandboxState.load(tmp_path / "new.json")
    assert missing.surveys == {}


def test_autosave_writes_changes(tmp_path: Path) -> None:
    path = tmp_path / "auto.json"
    state = SandboxState(path=path)
    state.create_user("auto@example.com")
    stop = state.start_autosave(interval=0.01)
    customer_satisfaction(state)
    stop()  # flushes on stop
    assert len(SandboxState.load(path).surveys) == 1


@asynccontextmanager
async def _serving(state: SandboxState) -> AsyncIterator[httpx.AsyncClient]:
    """The sandbox app on ``state`` through its lifespan (which saves the state at the end)."""
    app = create_app(state, autosave_interval=3600)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://s.test"
        ) as client,
    ):
        yield client


@pytest.mark.anyio
async def test_app_lifespan_saves_on_shutdown(tmp_path: Path) -> None:
    path = tmp_path / "life.json"
    state = SandboxState(path=path)
    _, token = state.create_user("life@example.com")
    async with _serving(state) as client:
        resp = await client.post(
            "/API/v3/survey-definitions",
            json={"SurveyName": "Saved"},
            headers={"X-API-TOKEN": token},
        )
        assert resp.status_code == 200
    assert [s.name for s in SandboxState.load(path).surveys.values()] == ["Saved"]


@pytest.mark.anyio
async def test_the_tango_double_is_kept_in_the_state_file(tmp_path: Path) -> None:
    """Orders, balances and the platform key outlive a restart: an order placed before it is
    found after it, and repeating its externalRefID returns it without a second debit."""
    path = tmp_path / "tango.json"
    body = {
        "customerIdentifier": DEFAULT_CUSTOMER, "accountIdentifier": DEFAULT_ACCOUNT,
        "amount": 12.5, "utid": "U561593", "sendEmail": False, "externalRefID": "keep1",
    }  # fmt: skip

    async def platform(client: httpx.AsyncClient) -> tuple[str, str]:
        control = (await client.get("/_sandbox/tango")).json()
        return control["platformName"], control["platformKey"]

    async with _serving(SandboxState(path=path)) as client:
        auth = await platform(client)
        placed = await client.post("/raas/v2/orders", json=body, auth=auth)
        assert placed.status_code == 201, placed.text
        first_key = auth
        reference = placed.json()["referenceOrderID"]

    reloaded = SandboxState.load(path)
    assert reloaded.extra["tango"]["orders"][0]["referenceOrderID"] == reference
    async with _serving(reloaded) as client:
        auth = await platform(client)
        assert auth == first_key
        found = await client.get(f"/raas/v2/orders/{reference}", auth=auth)
        assert found.status_code == 200
        assert found.json()["amountCharged"]["total"] == 12.5
        again = await client.post("/raas/v2/orders", json=body, auth=auth)
        assert again.status_code == 200
        assert again.json()["referenceOrderID"] == reference
        balance = await client.get(f"/raas/v2/accounts/{DEFAULT_ACCOUNT}", auth=auth)
        assert balance.json()["currentBalance"] == 1000.0 - 12.5
        assert (await client.get("/raas/v2/catalogs", auth=auth)).json()["brands"]
        # Resetting the Qualtrics data leaves the Tango double, still kept in the file.
        reloaded.reset()
        await client.post("/raas/v2/orders", json={**body, "externalRefID": "keep2"}, auth=auth)
    assert len(SandboxState.load(path).extra["tango"]["orders"]) == 2


def test_a_tango_state_record_of_another_version_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported Tango double state version"):
        TangoState.from_json({"version": 99})


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- seeds ----------------------------------------------------------------------------------


def test_builtin_seeds_have_the_expected_question_types() -> None:
    state = SandboxState()
    csat, screener, panel, pulse = seed_builtin(state)
    kinds = {(q.type, q.selector) for q in csat.questions.values()}
    assert {("MC", "SAVR"), ("MC", "NPS"), ("Matrix", "Likert"), ("TE", "ML")} <= kinds
    assert {q.type for q in pulse.questions.values()} >= {"Slider", "RO", "Matrix"}
    tags = {q.tag for q in panel.questions.values()}
    assert {"first_name", "last_name", "email", "age", "consent"} <= tags
    assert screener.fraud_fields()
    assert panel.fraud_fields()
    assert not csat.fraud_fields()
    for survey in (csat, screener, panel, pulse):
        legacy = survey.to_legacy(0)
        assert legacy["blocks"]
        assert legacy["exportColumnMap"]
        assert legacy["flow"][0]["type"] == "EmbeddedData"
        assert legacy["embeddedData"]
        assert survey.id.startswith("SV_")
        assert len(survey.id) == 18
        # the definitions shape parses back into the same survey
        assert Survey.from_record(survey.to_record()).to_legacy(0) == legacy


def test_generated_surveys_are_deterministic_in_shape() -> None:
    a = seed_generated(SandboxState(), 5, seed=42)
    b = seed_generated(SandboxState(), 5, seed=42)
    assert [s.name for s in a] == [s.name for s in b]
    assert [list(s.questions) for s in a] == [list(s.questions) for s in b]


def test_generated_surveys_added_one_at_a_time_have_distinct_names() -> None:
    # What `qualflow sandbox seed --url` does: one survey per call, the same seed twice.
    state = SandboxState()
    made = [seed_generated(state, 1, seed=seed)[0] for seed in (0, 1, 2, 3, 0, 0)]
    names = [s.name for s in made]
    assert len(set(names)) == len(names)
    assert names[4] == names[0].replace("#1", "#2")
    assert names[5] == names[0].replace("#1", "#3")


# -- respondents --------------------------------------------------------------------------


def _answers(values: list[dict[str, object]]) -> list[dict[str, object]]:
    skip = {"startDate", "endDate", "recordedDate", "Q_RelevantIDLastStartDate"}
    return [{k: v for k, v in row.items() if k not in skip} for row in values]


def test_simulator_is_deterministic_with_a_seed() -> None:
    state = SandboxState()
    sid = research_screener(state).id
    first = Simulator(state, sid, seed=7).generate(200)
    second = Simulator(state, sid, seed=7).generate(200)
    other = Simulator(state, sid, seed=8).generate(200)
    assert _answers(first) == _answers(second)
    assert _answers(first) != _answers(other)


def test_simulated_answers_are_plausible() -> None:
    state = SandboxState()
    survey = customer_satisfaction(state)
    made = Simulator(state, survey.id, seed=5).run(1000)
    values = [r.values for r in made]
    nps = [v["QID2"] for v in values if "QID2" in v]
    assert all(0 <= s <= 10 for s in nps)
    assert 5.0 < statistics.mean(nps) < 9.5  # skewed positive, not uniform
    assert len(set(nps)) >= 8
    for v in values:
        if "QID2" in v:
            expected = 1 if v["QID2"] <= 6 else 2 if v["QID2"] <= 8 else 3
            assert v["QID2_NPS_GROUP"] == expected
    sat = [v["QID1"] for v in values if "QID1" in v]
    assert set(sat) <= {1, 2, 3, 4, 5}
    assert statistics.mean(sat) > 3
    partial = [v for v in values if v["finished"] == 0]
    assert 0.05 < len(partial) / len(values) < 0.3
    assert all(v["progress"] < 100 for v in partial)
    email = [v for v in values if v["distributionChannel"] == "email"]
    assert 0.35 < len(email) / len(values) < 0.65
    assert all("@" in str(v["recipientEmail"]) for v in email)
    assert all(v["channel"] in ("web", "app", "store", "phone") for v in values)
    assert all("Q_RecaptchaScore" not in v for v in values)  # CSAT has fraud detection off
    assert state.response_count(survey.id) == 1000


def test_fraud_fields_bots_and_duplicates() -> None:
    state = SandboxState()
    survey = panel_signup(state)
    profile = Profile(bot_rate=0.1, duplicate_rate=0.1, abandon_rate=0.0)
    values = [r.values for r in Simulator(state, survey.id, seed=9, profile=profile).run(1000)]
    assert all(all(f in v for f in FRAUD) for v in values)
    bots = [v for v in values if float(str(v["Q_RecaptchaScore"])) < 0.5]
    assert 0.05 < len(bots) / len(values) < 0.16
    assert all(int(str(v["Q_RelevantIDFraudScore"])) >= 30 for v in bots)
    humans = [v for v in values if float(str(v["Q_RecaptchaScore"])) >= 0.5]
    assert statistics.mean(int(str(v["Q_RelevantIDFraudScore"])) for v in humans) < 20
    email_tag = next(q for q in survey.questions.values() if q.tag == "email").qid
    emails = [v[f"{email_tag}_TEXT"] for v in values]
    dupes = [v for v in values if v["Q_RelevantIDDuplicate"] == "true"]
    assert 0.05 < len(dupes) / len(values) < 0.16
    assert len(set(emails)) < len(emails)
    assert all(int(str(v["Q_RelevantIDDuplicateScore"])) >= 75 for v in dupes)
    assert any(v.get("Q_BallotBoxStuffing") == "true" for v in dupes)


def test_pulse_slider_rank_matrix_answers() -> None:
    state = SandboxState()
    survey = employee_pulse(state)
    values = Simulator(state, survey.id, seed=2, profile=Profile(abandon_rate=0)).generate(300)
    slider = survey.questions["QID1"]
    rank = survey.questions["QID3"]
    for v in values:
        assert all(0 <= int(str(v[f"QID1_{c.id}"])) <= 10 for c in slider.choices)
        ranks = sorted(int(str(v[f"QID3_{c.id}"])) for c in rank.choices)
        assert ranks == list(range(1, len(rank.choices) + 1))
        assert all(str(v[f"QID2_{r}"]) in {"1", "2", "3", "4", "5"} for r in "1234")
    firsts = {next(c.id for c in rank.choices if v[f"QID3_{c.id}"] == 1) for v in values}
    assert len(firsts) == len(rank.choices)


def test_profile_validation() -> None:
    with pytest.raises(Exception, match="abandonRate"):
        Profile(abandon_rate=1.5)
    with pytest.raises(Exception, match="botRate"):
        Profile.from_json({"botRate": "many"})


def test_in_progress_sessions_are_not_recorded_responses() -> None:
    state = SandboxState()
    survey = customer_satisfaction(state)
    made = Simulator(state, survey.id, seed=4, profile=Profile(in_progress_rate=0.5)).run(200)
    open_sessions = [r for r in made if r.in_progress]
    assert 60 < len(open_sessions) < 140
    assert all(r.values["finished"] == 0 for r in open_sessions)
    assert state.response_count(survey.id) == 200 - len(open_sessions)
