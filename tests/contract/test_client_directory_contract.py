"""Event subscriptions, XM directory, users, groups, distributions and sharing vs the sandbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from qualflow.qualtrics import BadRequest, NotFound
from qualflow.qualtrics.models import (
    CollaborationPermissions,
    ContactInput,
    ContactUpdate,
    EmailDistributionCreate,
    EmailHeader,
    FollowUpCreate,
    GroupCreate,
    GroupUpdate,
    LinkDistributionCreate,
    MessageInput,
    RecipientsInput,
    SurveyLinkInput,
    UserCreate,
    UserUpdate,
)
from tests.contract.contract_support import Api, Sandbox

HOOK = "https://hooks.example.org/qualtrics"


# -- event subscriptions ---------------------------------------------------------------------


def test_event_subscription_lifecycle(api: Api, survey_id: str) -> None:
    topic = f"surveyengine.completedResponse.{survey_id}"
    sub_id = api(api.client.event_subscriptions.create(topic, HOOK, shared_key="s3cret"))
    assert sub_id.startswith("SUB_")
    other = api(api.client.event_subscriptions.create("controlpanel.activateSurvey", HOOK))

    listed = api(api.client.event_subscriptions.list())
    assert {s.id for s in listed} == {sub_id, other}
    sub = api(api.client.event_subscriptions.get(sub_id))
    assert sub.topics == topic
    assert sub.publication_url == HOOK
    assert sub.encrypted is False

    api(api.client.event_subscriptions.delete(sub_id))
    with pytest.raises(NotFound):
        api(api.client.event_subscriptions.get(sub_id))
    assert [s.id for s in api(api.client.event_subscriptions.list())] == [other]


def test_subscription_url_is_checked_before_sending(api: Api) -> None:
    with pytest.raises(ValueError, match="publication_url"):
        api(api.client.event_subscriptions.create("controlpanel.activateSurvey", "ftp://x"))


# -- XM directory ------------------------------------------------------------------------------


def _directory(api: Api) -> str:
    directories = api(api.client.directories.list())
    assert directories
    default = [d for d in directories if d.is_default]
    assert default
    assert default[0].directory_id.startswith("POOL_")
    return default[0].directory_id


def test_contacts_crud_and_skip_token_paging(api: Api) -> None:
    pool = _directory(api)
    created = [
        api(api.client.contacts.create(pool, first_name=f"P{i}", email=f"p{i}@example.org"))
        for i in range(7)
    ]
    assert all(c.id.startswith("CID_") for c in created)

    pages = api.pages(api.client.contacts.iter(pool, page_size=3))
    assert [len(p.elements) for p in pages] == [3, 3, 1]
    assert pages[0].next_page is not None
    assert "skipToken=" in pages[0].next_page
    listed = [c.contact_id for p in pages for c in p.elements]
    assert listed == [c.id for c in created]

    first = created[0].id
    api(api.client.contacts.update(pool, first, ContactUpdate(last_name="Lovelace")))
    contact = api(api.client.contacts.get(pool, first))
    assert (contact.first_name, contact.last_name) == ("P0", "Lovelace")
    assert contact.email == "p0@example.org"

    api(api.client.contacts.delete(pool, first))
    with pytest.raises(NotFound):
        api(api.client.contacts.get(pool, first))


def test_contact_model_or_keywords_not_both(api: Api) -> None:
    pool = _directory(api)
    with pytest.raises(ValueError, match="not both"):
        api(api.client.contacts.create(pool, ContactInput(email="a@b.c"), first_name="A"))


def test_mailing_lists_and_their_contacts(api: Api) -> None:
    pool = _directory(api)
    list_id = api(api.client.mailing_lists.create(pool, "Spring panel"))
    assert list_id.startswith("CG_")
    added = api(
        api.client.mailing_lists.add_contact(
            pool,
            list_id,
            ContactInput(first_name="Ada", email="ada@example.org", embedded_data={"tier": "A"}),
        )
    )
    assert added.id.startswith("CID_")
    assert added.contact_lookup_id is not None
    assert added.contact_lookup_id.startswith("CGC_")
    api(api.client.mailing_lists.add_contact(pool, list_id, email="bob@example.org"))

    members = api(api.client.mailing_lists.list_contacts(pool, list_id))
    assert [m.email for m in members] == ["ada@example.org", "bob@example.org"]
    assert members[0].embedded_data == {"tier": "A"}

    api(api.client.mailing_lists.rename(pool, list_id, "Spring panel 2025"))
    mailing_list = api(api.client.mailing_lists.get(pool, list_id))
    assert mailing_list.name == "Spring panel 2025"
    assert mailing_list.contact_count == 2
    assert [m.mailing_list_id for m in api(api.client.mailing_lists.list(pool))] == [list_id]

    api(api.client.mailing_lists.remove_contact(pool, list_id, added.id))
    assert len(api(api.client.mailing_lists.list_contacts(pool, list_id))) == 1

    api(api.client.mailing_lists.delete(pool, list_id))
    with pytest.raises(NotFound):
        api(api.client.mailing_lists.get(pool, list_id))


# -- users and groups ----------------------------------------------------------------------------


def test_users_crud_and_api_tokens(api: Api, sandbox: Sandbox) -> None:
    user_id = api(
        api.client.users.create(
            UserCreate(
                username="grace@example.org",
                password="correct horse battery",
                first_name="Grace",
                last_name="Hopper",
                user_type="UT_BRANDADMIN",
                email="grace@example.org",
            )
        )
    )
    assert user_id.startswith("UR_")
    assert {u.id for u in api(api.client.users.list())} == {sandbox.user_id, user_id}
    api(api.client.users.update(user_id, UserUpdate(last_name="Brewster Hopper")))
    assert api(api.client.users.get(user_id)).last_name == "Brewster Hopper"

    issued = api(api.client.users.create_api_token(user_id))
    assert api(api.client.users.get_api_token(user_id)).get_secret_value() == (
        issued.get_secret_value()
    )
    assert issued.get_secret_value() not in repr(issued)
    as_grace = api.make(api_token=issued.get_secret_value())
    assert api(as_grace.whoami()).user_id == user_id

    api(api.client.users.delete(user_id))
    with pytest.raises(NotFound):
        api(api.client.users.get(user_id))


def test_groups_and_members(api: Api, sandbox: Sandbox) -> None:
    group_id = api(api.client.groups.create(GroupCreate(type="GT_DEFAULT", name="Researchers")))
    assert group_id.startswith("GR_")
    api(api.client.groups.update(group_id, GroupUpdate(name="UX researchers")))
    assert api(api.client.groups.get(group_id)).name == "UX researchers"
    assert [g.id for g in api(api.client.groups.list())] == [group_id]

    api(api.client.groups.add_member(group_id, sandbox.user_id))
    members = api.collect(api.client.groups.iter_members(group_id))
    assert [m.id for m in members] == [sandbox.user_id]
    api(api.client.groups.remove_member(group_id, sandbox.user_id))
    assert api.collect(api.client.groups.iter_members(group_id)) == []

    api(api.client.groups.delete(group_id))
    with pytest.raises(NotFound):
        api(api.client.groups.get(group_id))


def test_share_survey_with_a_group(api: Api, sandbox: Sandbox, survey_id: str) -> None:
    group_id = api(api.client.groups.create(GroupCreate(type="GT_DEFAULT", name="Analysts")))
    api(api.client.surveys.share(survey_id, group_id))
    api(api.client.surveys.share(survey_id, sandbox.user_id, CollaborationPermissions.full()))
    shares = sandbox.state.directory.collaborations[survey_id]
    assert len(shares) == 2
    with pytest.raises(NotFound):
        api(api.client.surveys.share("SV_000000000000000", group_id))


# -- distributions -------------------------------------------------------------------------------


def _mailing_list(api: Api, people: int) -> tuple[str, str]:
    pool = _directory(api)
    list_id = api(api.client.mailing_lists.create(pool, "Invitees"))
    for i in range(people):
        api(api.client.mailing_lists.add_contact(pool, list_id, email=f"r{i}@example.org"))
    return pool, list_id


def test_email_distribution_with_history_reminder_and_thanks(api: Api, survey_id: str) -> None:
    _, list_id = _mailing_list(api, 2)
    header = EmailHeader(from_email="research@example.org", from_name="Research", subject="Hi")
    now = datetime.now(UTC)
    distribution_id = api(
        api.client.distributions.create_email(
            EmailDistributionCreate(
                header=header,
                survey_link=SurveyLinkInput(survey_id=survey_id),
                recipients=RecipientsInput(mailing_list_id=list_id),
                send_date=now,
                message=MessageInput(message_text="Please take our survey: ${l://SurveyURL}"),
            )
        )
    )
    assert distribution_id.startswith("EMD_")

    found = api(api.client.distributions.get(distribution_id, survey_id=survey_id))
    assert found.id == distribution_id
    assert found.recipients is not None
    assert found.recipients.mailing_list_id == list_id
    assert found.stats is not None
    assert [d.id for d in api(api.client.distributions.list(survey_id))] == [distribution_id]

    history = api.collect(api.client.distributions.iter_history(distribution_id))
    assert len(history) == 2
    assert all(entry.contact_id for entry in history)

    later = FollowUpCreate(
        header=header,
        send_date=now + timedelta(days=3),
        message=MessageInput(message_text="A gentle reminder"),
    )
    reminder = api(api.client.distributions.remind(distribution_id, later))
    thanks = api(api.client.distributions.thank(distribution_id, later))
    assert reminder.startswith("EMD_")
    assert thanks.startswith("EMD_")
    assert len({distribution_id, reminder, thanks}) == 3

    api(api.client.distributions.delete(distribution_id))
    with pytest.raises(NotFound):
        api(api.client.distributions.get(distribution_id, survey_id=survey_id))


def test_personal_links_distribution(api: Api, survey_id: str) -> None:
    _, list_id = _mailing_list(api, 4)
    distribution_id = api(
        api.client.distributions.create_links(
            LinkDistributionCreate(
                survey_id=survey_id,
                mailing_list_id=list_id,
                description="Panel wave 1",
                expiration_date=datetime.now(UTC) + timedelta(days=30),
            )
        )
    )
    pages = api.pages(api.client.distributions.iter_links(distribution_id, survey_id=survey_id))
    links = [link for page in pages for link in page.elements]
    assert len(links) == 4
    assert all(survey_id in link.link for link in links)
    assert len({link.link for link in links}) == 4
    assert {link.email for link in links} == {f"r{i}@example.org" for i in range(4)}


def test_distribution_to_unknown_list_is_refused(api: Api, survey_id: str) -> None:
    with pytest.raises((BadRequest, NotFound)) as info:
        api(
            api.client.distributions.create_links(
                LinkDistributionCreate(
                    survey_id=survey_id, mailing_list_id="CG_000000000000000", description="x"
                )
            )
        )
    assert "CG_000000000000000" in str(info.value)
