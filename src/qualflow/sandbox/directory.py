"""XM directory (directories, contacts, mailing lists), groups, distributions, collaborations.

Kept apart from :mod:`qualflow.sandbox.state` so the core stays readable; the tables share the
state's lock and persistence. Rows are kept in their API shape (camelCase dicts) because that is
what every caller wants back; derived fields (contact counts, distribution stats) are computed on
read.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from qualflow.sandbox import errors, ids
from qualflow.sandbox.errors import bad_request, not_found
from qualflow.sandbox.export import parse_iso

if TYPE_CHECKING:
    from qualflow.sandbox.state import SandboxState

CONTACT_FIELDS = ("firstName", "lastName", "email", "phone", "extRef", "language")
DEDUPLICATION = {
    "email": True,
    "firstName": False,
    "lastName": False,
    "externalDataReference": False,
    "phone": False,
}
LINK_TYPES = ("Individual", "Multiple", "Anonymous")


def _contact_input(body: Any, *, partial: bool) -> dict[str, Any]:
    """Validate a contact body (create or update); 400 naming the bad field."""
    if not isinstance(body, dict):
        raise bad_request("Invalid request body: expected a JSON object.")
    allowed = {*CONTACT_FIELDS, "unsubscribed", "embeddedData"}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise bad_request(f"Invalid request: unknown contact field(s) {', '.join(unknown)}.")
    out: dict[str, Any] = {}
    for name in CONTACT_FIELDS:
        if name in body:
            value = body[name]
            if value is not None and not isinstance(value, str):
                raise errors.invalid_param(name, "expected a string")
            out[name] = value
    if "email" in out and out["email"] and "@" not in out["email"]:
        raise errors.invalid_param("email", f"{out['email']!r} is not an email address")
    if "unsubscribed" in body:
        if not isinstance(body["unsubscribed"], bool):
            raise errors.invalid_param("unsubscribed", "expected a boolean")
        out["unsubscribed"] = body["unsubscribed"]
    if "embeddedData" in body:
        embedded = body["embeddedData"]
        if embedded is not None and not isinstance(embedded, dict):
            raise errors.invalid_param("embeddedData", "expected an object")
        out["embeddedData"] = {k: v for k, v in (embedded or {}).items()}
    if not partial and not any(
        out.get(f) for f in ("email", "phone", "extRef", "firstName", "lastName")
    ):
        raise bad_request(
            "Invalid request: a contact needs at least one of email, phone, extRef, "
            "firstName, lastName."
        )
    return out


@dataclass
class DirectoryStore:
    """Tables for directory, groups, distributions and collaborations of one sandbox."""

    state: SandboxState
    directories: dict[str, dict[str, Any]] = field(default_factory=dict)
    contacts: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    mailing_lists: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    distributions: dict[str, dict[str, Any]] = field(default_factory=dict)
    collaborations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    # -- directories ---------------------------------------------------------------------
    def ensure_default(self) -> str:
        """The default directory's id (created on first use)."""
        with self.state.lock:
            for d in self.directories.values():
                if d["isDefault"]:
                    return str(d["directoryId"])
            return self.add_directory("Default Directory", is_default=True)

    def add_directory(self, name: str, *, is_default: bool = False) -> str:
        with self.state.lock:
            did = ids.directory_id()
            self.directories[did] = {
                "directoryId": did,
                "name": name,
                "isDefault": is_default,
                "deduplicationCriteria": dict(DEDUPLICATION),
            }
            self.contacts[did] = {}
            self.mailing_lists[did] = {}
        self.state.mark_dirty()
        return did

    def list_directories(self) -> list[dict[str, Any]]:
        self.ensure_default()
        with self.state.lock:
            return [
                {**copy.deepcopy(d), "contactCount": len(self.contacts[d["directoryId"]])}
                for d in self.directories.values()
            ]

    def _directory(self, directory_id: str) -> dict[str, dict[str, Any]]:
        if directory_id not in self.directories:
            raise not_found(f"Directory {directory_id} not found.")
        return self.contacts[directory_id]

    # -- contacts ------------------------------------------------------------------------
    def list_contacts(self, directory_id: str) -> list[dict[str, Any]]:
        with self.state.lock:
            return [self._contact_out(c) for c in self._directory(directory_id).values()]

    @staticmethod
    def _contact_out(contact: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy(contact)

    def get_contact(self, directory_id: str, contact_id: str) -> dict[str, Any]:
        with self.state.lock:
            contact = self._directory(directory_id).get(contact_id)
            if contact is None:
                raise not_found(f"Contact {contact_id} not found in directory {directory_id}.")
            return self._contact_out(contact)

    def create_contact(self, directory_id: str, body: Any) -> str:
        data = _contact_input(body, partial=False)
        with self.state.lock:
            table = self._directory(directory_id)
            email = (data.get("email") or "").lower()
            if email and self.directories[directory_id]["deduplicationCriteria"].get("email"):
                for existing in table.values():
                    if (existing.get("email") or "").lower() == email:
                        # XM directory merges a duplicate into the existing contact.
                        existing.update({k: v for k, v in data.items() if k != "embeddedData"})
                        existing["embeddedData"].update(data.get("embeddedData") or {})
                        self.state.mark_dirty()
                        return str(existing["contactId"])
            cid = ids.contact_id()
            table[cid] = {
                "contactId": cid,
                "firstName": data.get("firstName"),
                "lastName": data.get("lastName"),
                "email": data.get("email"),
                "phone": data.get("phone"),
                "extRef": data.get("extRef"),
                "language": data.get("language"),
                "unsubscribed": data.get("unsubscribed", False),
                "embeddedData": data.get("embeddedData") or {},
                "responseHistory": [],
                "emailHistory": [],
            }
        self.state.mark_dirty()
        return cid

    def update_contact(self, directory_id: str, contact_id: str, body: Any) -> None:
        data = _contact_input(body, partial=True)
        with self.state.lock:
            contact = self._directory(directory_id).get(contact_id)
            if contact is None:
                raise not_found(f"Contact {contact_id} not found in directory {directory_id}.")
            embedded = data.pop("embeddedData", None)
            contact.update(data)
            if embedded is not None:
                contact["embeddedData"].update(embedded)
        self.state.mark_dirty()

    def delete_contact(self, directory_id: str, contact_id: str) -> None:
        with self.state.lock:
            table = self._directory(directory_id)
            if table.pop(contact_id, None) is None:
                raise not_found(f"Contact {contact_id} not found in directory {directory_id}.")
            for ml in self.mailing_lists[directory_id].values():
                ml["members"].pop(contact_id, None)
        self.state.mark_dirty()

    # -- mailing lists -------------------------------------------------------------------
    def _list(self, directory_id: str, mailing_list_id: str) -> dict[str, Any]:
        self._directory(directory_id)
        ml = self.mailing_lists[directory_id].get(mailing_list_id)
        if ml is None:
            raise not_found(
                f"Mailing list {mailing_list_id} not found in directory {directory_id}."
            )
        return ml

    @staticmethod
    def _list_out(ml: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in ml.items() if k != "members"}
        out["contactCount"] = len(ml["members"])
        return out

    def list_mailing_lists(self, directory_id: str) -> list[dict[str, Any]]:
        with self.state.lock:
            self._directory(directory_id)
            return [self._list_out(ml) for ml in self.mailing_lists[directory_id].values()]

    def get_mailing_list(self, directory_id: str, mailing_list_id: str) -> dict[str, Any]:
        with self.state.lock:
            return self._list_out(self._list(directory_id, mailing_list_id))

    def create_mailing_list(self, directory_id: str, name: str, owner_id: str) -> str:
        now = self.state.now_iso()
        with self.state.lock:
            self._directory(directory_id)
            mid = ids.mailing_list_id()
            self.mailing_lists[directory_id][mid] = {
                "mailingListId": mid,
                "name": name,
                "ownerId": owner_id,
                "lastModifiedDate": now,
                "creationDate": now,
                "members": {},
            }
        self.state.mark_dirty()
        return mid

    def rename_mailing_list(self, directory_id: str, mailing_list_id: str, name: str) -> None:
        with self.state.lock:
            ml = self._list(directory_id, mailing_list_id)
            ml["name"] = name
            ml["lastModifiedDate"] = self.state.now_iso()
        self.state.mark_dirty()

    def delete_mailing_list(self, directory_id: str, mailing_list_id: str) -> None:
        with self.state.lock:
            self._list(directory_id, mailing_list_id)
            del self.mailing_lists[directory_id][mailing_list_id]
        self.state.mark_dirty()

    def list_members(self, directory_id: str, mailing_list_id: str) -> list[dict[str, Any]]:
        with self.state.lock:
            ml = self._list(directory_id, mailing_list_id)
            table = self.contacts[directory_id]
            return [
                {**self._contact_out(table[cid]), "contactLookupId": lookup}
                for cid, lookup in ml["members"].items()
                if cid in table
            ]

    def add_member(self, directory_id: str, mailing_list_id: str, body: Any) -> tuple[str, str]:
        with self.state.lock:
            ml = self._list(directory_id, mailing_list_id)
            cid = self.create_contact(directory_id, body)
            lookup = ml["members"].get(cid) or ids.contact_lookup_id()
            ml["members"][cid] = lookup
            ml["lastModifiedDate"] = self.state.now_iso()
        self.state.mark_dirty()
        return cid, lookup

    def remove_member(self, directory_id: str, mailing_list_id: str, contact_id: str) -> None:
        with self.state.lock:
            ml = self._list(directory_id, mailing_list_id)
            if ml["members"].pop(contact_id, None) is None:
                raise not_found(f"Contact {contact_id} is not in mailing list {mailing_list_id}.")
        self.state.mark_dirty()

    def find_mailing_list(self, mailing_list_id: str) -> tuple[str, dict[str, Any]]:
        for did, lists in self.mailing_lists.items():
            if mailing_list_id in lists:
                return did, lists[mailing_list_id]
        raise errors.invalid_param("mailingListId", f"unknown mailing list {mailing_list_id}")

    # -- groups --------------------------------------------------------------------------
    def create_group(self, body: Any, creator_id: str) -> str:
        if not isinstance(body, dict):
            raise bad_request("Invalid request body: expected a JSON object.")
        name, gtype = body.get("name"), body.get("type")
        if not isinstance(name, str) or not name.strip():
            raise errors.invalid_param("name", "expected a non-empty string")
        if not isinstance(gtype, str) or not gtype.startswith("GT_"):
            raise errors.invalid_param("type", "expected a group type id (GT_…)")
        division = body.get("divisionId")
        if division is not None and not isinstance(division, str):
            raise errors.invalid_param("divisionId", "expected a division id")
        gid = ids.group_id()
        with self.state.lock:
            self.groups[gid] = {
                "id": gid,
                "name": name,
                "type": gtype,
                "divisionId": division,
                "creationDate": self.state.now_iso(),
                "creatorId": creator_id,
                "organizationId": self.state.config.brand_id,
                "members": [],
            }
        self.state.mark_dirty()
        return gid

    def group(self, group_id: str) -> dict[str, Any]:
        g = self.groups.get(group_id)
        if g is None:
            raise not_found(f"Group {group_id} not found.")
        return g

    @staticmethod
    def group_out(g: dict[str, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in g.items() if k != "members"}

    def update_group(self, group_id: str, body: Any) -> None:
        if not isinstance(body, dict):
            raise bad_request("Invalid request body: expected a JSON object.")
        unknown = sorted(set(body) - {"name", "type", "divisionId"})
        if unknown:
            raise bad_request(f"Invalid request: unknown group field(s) {', '.join(unknown)}.")
        for key in ("name", "type", "divisionId"):
            if key in body and not isinstance(body[key], str | None):
                raise errors.invalid_param(key, "expected a string")
        with self.state.lock:
            self.group(group_id).update(body)
        self.state.mark_dirty()

    def delete_group(self, group_id: str) -> None:
        with self.state.lock:
            self.group(group_id)
            del self.groups[group_id]
        self.state.mark_dirty()

    def add_group_member(self, group_id: str, user_id: Any) -> None:
        if not isinstance(user_id, str) or not user_id:
            raise errors.invalid_param("userId", "expected the id (UR_…) of the user to add")
        if user_id not in self.state.users:
            raise errors.invalid_param("userId", f"unknown user {user_id}")
        with self.state.lock:
            members = self.group(group_id)["members"]
            if user_id not in members:
                members.append(user_id)
        self.state.mark_dirty()

    def remove_group_member(self, group_id: str, user_id: str) -> None:
        with self.state.lock:
            members = self.group(group_id)["members"]
            if user_id not in members:
                raise not_found(f"User {user_id} is not a member of group {group_id}.")
            members.remove(user_id)
        self.state.mark_dirty()

    # -- distributions -------------------------------------------------------------------
    def create_distribution(self, body: Any, owner_id: str, base_url: str) -> str:
        if not isinstance(body, dict):
            raise bad_request("Invalid request body: expected a JSON object.")
        if body.get("action") == "CreateDistribution":
            return self._create_link_distribution(body, owner_id, base_url)
        header = _require_obj(body, "header")
        for key in ("fromEmail", "fromName", "subject"):
            if not isinstance(header.get(key), str) or not header[key]:
                raise errors.invalid_param(f"header.{key}", "expected a non-empty string")
        if "@" not in header["fromEmail"]:
            raise errors.invalid_param("header.fromEmail", "expected an email address")
        link = _require_obj(body, "surveyLink")
        survey_id = link.get("surveyId")
        if not isinstance(survey_id, str):
            raise errors.invalid_param("surveyLink.surveyId", "expected a survey id")
        link_type = link.get("type", "Individual")
        if link_type not in LINK_TYPES:
            raise errors.invalid_param(
                "surveyLink.type", f"expected one of {', '.join(LINK_TYPES)}"
            )
        expiration = _optional_date(link, "expirationDate", "surveyLink.expirationDate")
        recipients = _require_obj(body, "recipients")
        targets = [
            k for k in ("mailingListId", "contactId", "transactionBatchId") if recipients.get(k)
        ]
        if len(targets) != 1:
            raise errors.invalid_param(
                "recipients", "give exactly one of mailingListId, contactId, transactionBatchId"
            )
        if "transactionBatchId" in targets:
            raise bad_request("recipients.transactionBatchId is not supported by the sandbox.")
        send_date = body.get("sendDate")
        parse_iso(send_date, "sendDate")
        message = _require_obj(body, "message")
        has_library = isinstance(message.get("libraryId"), str) and isinstance(
            message.get("messageId"), str
        )
        if has_library == isinstance(message.get("messageText"), str):
            raise errors.invalid_param(
                "message", "give either libraryId and messageId, or messageText"
            )
        embedded = body.get("embeddedData")
        if embedded is not None and not isinstance(embedded, dict):
            raise errors.invalid_param("embeddedData", "expected an object")
        with self.state.lock:
            self.state.survey_seen_by(owner_id, survey_id)
            members = self._recipients(recipients)
            return self._store_distribution(
                owner_id=owner_id,
                request_type="Invite",
                survey_id=survey_id,
                link_type=link_type,
                expiration=expiration,
                send_date=str(send_date),
                headers={
                    "fromEmail": header["fromEmail"],
                    "replyToEmail": header.get("replyToEmail"),
                    "fromName": header["fromName"],
                    "subject": header["subject"],
                },
                recipients={
                    "mailingListId": recipients.get("mailingListId"),
                    "contactId": recipients.get("contactId"),
                    "libraryId": owner_id,
                    "sampleId": None,
                },
                message={
                    "libraryId": message.get("libraryId"),
                    "messageId": message.get("messageId"),
                    "messageText": message.get("messageText"),
                },
                embedded=embedded,
                members=members,
                base_url=base_url,
            )

    def _create_link_distribution(self, body: dict[str, Any], owner_id: str, base_url: str) -> str:
        survey_id = body.get("surveyId")
        if not isinstance(survey_id, str):
            raise errors.invalid_param("surveyId", "expected a survey id")
        ml_id = body.get("mailingListId")
        if not isinstance(ml_id, str):
            raise errors.invalid_param("mailingListId", "expected a mailing list id")
        description = body.get("description")
        if not isinstance(description, str) or not description:
            raise errors.invalid_param("description", "expected a non-empty string")
        link_type = body.get("linkType", "Individual")
        if link_type not in LINK_TYPES:
            raise errors.invalid_param("linkType", f"expected one of {', '.join(LINK_TYPES)}")
        expiration = _optional_date(body, "expirationDate", "expirationDate")
        with self.state.lock:
            self.state.survey_seen_by(owner_id, survey_id)
            members = self._recipients({"mailingListId": ml_id})
            return self._store_distribution(
                owner_id=owner_id,
                request_type="GeneratedInvite",
                survey_id=survey_id,
                link_type=link_type,
                expiration=expiration,
                send_date=self.state.now_iso(),
                headers={"fromEmail": None, "replyToEmail": None, "fromName": None},
                recipients={
                    "mailingListId": ml_id,
                    "contactId": None,
                    "libraryId": owner_id,
                    "sampleId": None,
                },
                message={"libraryId": None, "messageId": None, "messageText": None},
                embedded=None,
                members=members,
                base_url=base_url,
                description=description,
            )

    def _recipients(self, recipients: dict[str, Any]) -> list[tuple[str, str, str | None]]:
        """(directory id, contact id, contact lookup id) of every recipient."""
        if recipients.get("mailingListId"):
            did, ml = self.find_mailing_list(str(recipients["mailingListId"]))
            return [(did, cid, lookup) for cid, lookup in ml["members"].items()]
        cid = str(recipients["contactId"])
        for did, table in self.contacts.items():
            if cid in table:
                return [(did, cid, None)]
        raise errors.invalid_param("recipients.contactId", f"unknown contact {cid}")

    def _store_distribution(
        self,
        *,
        owner_id: str,
        request_type: str,
        survey_id: str,
        link_type: str,
        expiration: str | None,
        send_date: str,
        headers: dict[str, Any],
        recipients: dict[str, Any],
        message: dict[str, Any],
        embedded: dict[str, Any] | None,
        members: list[tuple[str, str, str | None]],
        base_url: str,
        description: str | None = None,
        parent_id: str | None = None,
    ) -> str:
        did = ids.distribution_id()
        now = self.state.now_iso()
        entries = []
        for directory_id, cid, lookup in members:
            token = f"{did}_{cid}_MLRP_{ids.random_alnum(15)}_1"
            entries.append(
                {
                    "directoryId": directory_id,
                    "contactId": cid,
                    "contactLookupId": lookup,
                    "link": f"{base_url}/jfe/form/{survey_id}?Q_DL={token}&Q_CHL=email",
                    "responseId": None,
                    "responseStartedAt": None,
                    "responseCompletedAt": None,
                    "surveySessionId": None,
                    "openedAt": None,
                }
            )
        self.distributions[did] = {
            "id": did,
            "parentDistributionId": parent_id,
            "ownerId": owner_id,
            "organizationId": self.state.config.brand_id,
            "requestType": request_type,
            "sendDate": iso_z(send_date),
            "createdDate": now,
            "modifiedDate": now,
            "customHeaders": {},
            "headers": headers,
            "recipients": recipients,
            "message": message,
            "surveyLink": {
                "surveyId": survey_id,
                "expirationDate": expiration,
                "linkType": link_type,
            },
            "embeddedData": embedded,
            "description": description,
            "entries": entries,
        }
        self.state.mark_dirty()
        return did

    def distribution(self, distribution_id: str, survey_id: str | None = None) -> dict[str, Any]:
        d = self.distributions.get(distribution_id)
        if d is None or (survey_id is not None and d["surveyLink"]["surveyId"] != survey_id):
            raise not_found(f"Distribution {distribution_id} not found.")
        return d

    def _sent(self, d: dict[str, Any]) -> bool:
        return parse_iso(d["sendDate"], "sendDate") <= _now()

    def distribution_out(self, d: dict[str, Any]) -> dict[str, Any]:
        sent = self._sent(d)
        entries = d["entries"]
        started = sum(1 for e in entries if e["responseStartedAt"])
        finished = sum(1 for e in entries if e["responseCompletedAt"])
        out = {k: copy.deepcopy(v) for k, v in d.items() if k not in ("entries", "description")}
        out["requestStatus"] = "Done" if sent else "Pending"
        out["stats"] = {
            "sent": len(entries) if sent and d["requestType"] != "GeneratedInvite" else 0,
            "failed": 0,
            "started": started,
            "bounced": 0,
            "opened": sum(1 for e in entries if e["openedAt"] or e["responseStartedAt"]),
            "skipped": 0,
            "finished": finished,
            "complaints": 0,
            "blocked": 0,
        }
        return out

    def list_distributions(self, survey_id: str) -> list[dict[str, Any]]:
        with self.state.lock:
            self.state.get_survey(survey_id)
            return [
                self.distribution_out(d)
                for d in self.distributions.values()
                if d["surveyLink"]["surveyId"] == survey_id
            ]

    def links(self, distribution_id: str, survey_id: str) -> list[dict[str, Any]]:
        with self.state.lock:
            d = self.distribution(distribution_id, survey_id)
            out = []
            for e in d["entries"]:
                contact = self.contacts.get(e["directoryId"], {}).get(e["contactId"], {})
                status = (
                    "SurveyFinished"
                    if e["responseCompletedAt"]
                    else "SurveyStarted"
                    if e["responseStartedAt"]
                    else "Email Sent"
                    if self._sent(d) and d["requestType"] != "GeneratedInvite"
                    else "Email not sent"
                )
                out.append(
                    {
                        "contactId": e["contactId"],
                        "transactionId": None,
                        "link": e["link"],
                        "exceededContactFrequency": False,
                        "linkExpiration": d["surveyLink"]["expirationDate"],
                        "status": status,
                        "lastName": contact.get("lastName"),
                        "firstName": contact.get("firstName"),
                        "externalDataReference": contact.get("extRef"),
                        "email": contact.get("email"),
                        "unsubscribed": contact.get("unsubscribed", False),
                    }
                )
            return out

    def history(self, distribution_id: str) -> list[dict[str, Any]]:
        with self.state.lock:
            d = self.distribution(distribution_id)
            sent = self._sent(d) and d["requestType"] != "GeneratedInvite"
            return [
                {
                    "contactId": e["contactId"],
                    "contactLookupId": e["contactLookupId"],
                    "distributionID": d["id"],
                    "status": (
                        "SurveyFinished"
                        if e["responseCompletedAt"]
                        else "SurveyStarted"
                        if e["responseStartedAt"]
                        else "Success"
                        if sent
                        else "Pending"
                    ),
                    "surveyLink": e["link"],
                    "contactFrequencyRuleId": None,
                    "responseId": e["responseId"],
                    "responseCompletedAt": e["responseCompletedAt"],
                    "sentAt": d["sendDate"] if sent else None,
                    "openedAt": e["openedAt"] or e["responseStartedAt"],
                    "responseStartedAt": e["responseStartedAt"],
                    "surveySessionId": e["surveySessionId"],
                }
                for e in d["entries"]
            ]

    def follow_up(self, distribution_id: str, kind: str, body: Any, owner_id: str) -> str:
        """A reminder or thank-you: a child distribution to the parent's recipients."""
        if not isinstance(body, dict):
            raise bad_request("Invalid request body: expected a JSON object.")
        header = _require_obj(body, "header")
        for key in ("fromEmail", "fromName", "subject"):
            if not isinstance(header.get(key), str) or not header[key]:
                raise errors.invalid_param(f"header.{key}", "expected a non-empty string")
        send_date = body.get("sendDate")
        parse_iso(send_date, "sendDate")
        message = _require_obj(body, "message")
        if not (
            isinstance(message.get("messageText"), str)
            or (
                isinstance(message.get("libraryId"), str)
                and isinstance(message.get("messageId"), str)
            )
        ):
            raise errors.invalid_param(
                "message", "give either libraryId and messageId, or messageText"
            )
        with self.state.lock:
            parent = self.distribution(distribution_id)
            entries = parent["entries"]
            if kind == "ThankYou":
                entries = [e for e in entries if e["responseCompletedAt"]]
            else:
                entries = [e for e in entries if not e["responseCompletedAt"]]
            child = self._store_distribution(
                owner_id=owner_id,
                request_type=kind,
                survey_id=parent["surveyLink"]["surveyId"],
                link_type=parent["surveyLink"]["linkType"],
                expiration=parent["surveyLink"]["expirationDate"],
                send_date=str(send_date),
                headers={
                    "fromEmail": header["fromEmail"],
                    "replyToEmail": header.get("replyToEmail"),
                    "fromName": header["fromName"],
                    "subject": header["subject"],
                },
                recipients=dict(parent["recipients"]),
                message={
                    "libraryId": message.get("libraryId"),
                    "messageId": message.get("messageId"),
                    "messageText": message.get("messageText"),
                },
                embedded=parent["embeddedData"],
                members=[(e["directoryId"], e["contactId"], e["contactLookupId"]) for e in entries],
                base_url="",
                parent_id=parent["id"],
            )
            # Follow-ups reuse the parent's personal links.
            links = {e["contactId"]: e["link"] for e in parent["entries"]}
            for e in self.distributions[child]["entries"]:
                e["link"] = links[e["contactId"]]
        return child

    def delete_distribution(self, distribution_id: str) -> None:
        with self.state.lock:
            self.distribution(distribution_id)
            del self.distributions[distribution_id]
        self.state.mark_dirty()

    def recipients_for_simulation(self, distribution_id: str) -> list[dict[str, Any]]:
        """Recipients of a distribution who have not responded yet (for the simulator)."""
        with self.state.lock:
            d = self.distribution(distribution_id)
            out = []
            for e in d["entries"]:
                if e["responseId"]:
                    continue
                contact = self.contacts.get(e["directoryId"], {}).get(e["contactId"])
                if contact:
                    out.append({**copy.deepcopy(contact), "distributionId": d["id"]})
            return out

    def note_response(
        self, distribution_id: str, contact_id: str, response_id: str, *, finished: bool, at: str
    ) -> None:
        """Record a recipient's response on the distribution (history, stats, links)."""
        with self.state.lock:
            d = self.distributions.get(distribution_id)
            if d is None:
                return
            for e in d["entries"]:
                if e["contactId"] == contact_id:
                    e["responseId"] = response_id
                    e["responseStartedAt"] = e["responseStartedAt"] or at
                    e["surveySessionId"] = e["surveySessionId"] or f"FS_{ids.random_alnum(15)}"
                    if finished:
                        e["responseCompletedAt"] = at
        self.state.mark_dirty()

    # -- collaborations ------------------------------------------------------------------
    def add_collaboration(self, survey_id: str, body: Any) -> None:
        if not isinstance(body, dict):
            raise bad_request("Invalid request body: expected a JSON object.")
        # Clients send the collaborator as recipientId or as userId: errors name the one sent.
        if "recipientId" not in body and "userId" not in body:
            raise errors.invalid_param(
                "recipientId",
                "give the user (UR_…) or group (GR_…) to share with as recipientId or userId",
            )
        field_name = "recipientId" if "recipientId" in body else "userId"
        recipient = body[field_name]
        if not isinstance(recipient, str):
            raise errors.invalid_param(field_name, "expected a user (UR_…) or group (GR_…) id")
        permissions = body.get("permissions")
        if not isinstance(permissions, dict):
            raise errors.invalid_param("permissions", "expected an object")
        for section, flags in permissions.items():
            if not isinstance(flags, dict) or not all(isinstance(v, bool) for v in flags.values()):
                raise errors.invalid_param(
                    f"permissions.{section}", "expected an object of booleans"
                )
        with self.state.lock:
            self.state.get_survey(survey_id)
            if recipient not in self.state.users and recipient not in self.groups:
                raise errors.invalid_param(field_name, f"unknown user or group {recipient}")
            shares = self.collaborations.setdefault(survey_id, [])
            shares[:] = [s for s in shares if s["recipientId"] != recipient]
            shares.append({"recipientId": recipient, "permissions": copy.deepcopy(permissions)})
        self.state.mark_dirty()

    # -- persistence ---------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        with self.state.lock:
            return copy.deepcopy(
                {
                    "directories": self.directories,
                    "contacts": self.contacts,
                    "mailingLists": self.mailing_lists,
                    "groups": self.groups,
                    "distributions": self.distributions,
                    "collaborations": self.collaborations,
                }
            )

    def load_json(self, data: dict[str, Any]) -> None:
        with self.state.lock:
            self.directories = dict(data.get("directories") or {})
            self.contacts = {k: dict(v) for k, v in (data.get("contacts") or {}).items()}
            self.mailing_lists = {k: dict(v) for k, v in (data.get("mailingLists") or {}).items()}
            for did in self.directories:
                self.contacts.setdefault(did, {})
                self.mailing_lists.setdefault(did, {})
            self.groups = dict(data.get("groups") or {})
            self.distributions = dict(data.get("distributions") or {})
            self.collaborations = dict(data.get("collaborations") or {})


def _require_obj(body: dict[str, Any], name: str) -> dict[str, Any]:
    value = body.get(name)
    if not isinstance(value, dict):
        raise errors.invalid_param(name, "expected an object")
    return value


def _optional_date(body: dict[str, Any], key: str, name: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    return iso_z(value, name)


def iso_z(value: Any, name: str = "date") -> str:
    parsed = parse_iso(value, name).astimezone(UTC)
    return parsed.strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> datetime:
    from qualflow.sandbox.state import utcnow

    return utcnow()
