"""Simulated respondents: people (and bots) who complete or abandon a survey.

Each simulated person has a latent sentiment that shapes every answer (satisfaction scales, NPS,
Likert rows, sliders and open text agree with each other), a name and email, and a channel
(anonymous link or personal email link with recipient fields). A share of them abandon part-way
(partial responses), a share reuse an earlier person's email (duplicates) and a share are bots:
low ``Q_RecaptchaScore``, high ``Q_RelevantIDFraudScore``, straight-lined answers, gibberish text
and implausibly short durations. Fraud fields appear only when the survey enables them.
Everything is drawn from one ``random.Random(seed)``: same seed, same answers.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from qualflow.sandbox import errors
from qualflow.sandbox.model import Question, Survey, nps_group
from qualflow.sandbox.state import Response, SandboxState, iso, utcnow

# fmt: off
FIRST_NAMES = [
    "Ana", "Ben", "Chloé", "Dev", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi",
    "Liam", "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sam", "Tariq", "Uma", "Victor",
    "Wen", "Yara",
]
LAST_NAMES = [
    "Almeida", "Brown", "Chen", "Dubois", "Evans", "Fischer", "García", "Hughes", "Ivanova",
    "Jones", "Kim", "Lopez", "Müller", "Nguyen", "Okafor", "Patel", "Rossi", "Smith", "Tanaka",
    "Weber",
]
# fmt: on
DOMAINS = ["example.com", "mail.example.org", "inbox.example.net", "corp.example.com"]
CITIES = [(40.7128, -74.0060), (51.5072, -0.1276), (52.5200, 13.4050), (-33.8688, 151.2093),
          (43.6532, -79.3832), (48.8566, 2.3522), (35.6762, 139.6503)]  # fmt: skip
POSITIVE = [
    "Everything worked smoothly, thank you!",
    "Fast delivery and friendly support.",
    "Really easy to use, I would recommend it.",
    "Great experience overall.",
]
NEUTRAL = [
    "It was fine.",
    "Okay, nothing special.",
    "Some things could be clearer.",
    "Average experience.",
]
NEGATIVE = [
    "The checkout kept failing on my phone.",
    "Support took a week to answer.",
    "Too expensive for what you get.",
    "Delivery was late and nobody told me why.",
]
EMBEDDED_VALUES: dict[str, list[str]] = {
    "channel": ["web", "app", "store", "phone"],
    "department": ["Engineering", "Sales", "Support", "Finance", "Marketing", "Operations"],
    "location": ["Berlin", "London", "New York", "Remote", "Toronto"],
    "tenure_band": ["<1y", "1-3y", "3-5y", "5y+"],
    "source": ["newsletter", "linkedin", "website", "referral", "panel"],
    "utm_campaign": ["spring_recruit", "always_on", "b2b_q3"],
    "segment": ["smb", "mid-market", "enterprise", "consumer"],
}


@dataclass
class Profile:
    """Shares of behaviours in a simulated population."""

    abandon_rate: float = 0.15
    bot_rate: float = 0.05
    duplicate_rate: float = 0.05
    email_channel_rate: float = 0.5
    spread_days: float = 0.0  # recorded dates spread over the last N days (0 = now)
    in_progress_rate: float = 0.0  # sessions still open (exportResponsesInProgress; no events)

    def __post_init__(self) -> None:
        for f in (
            "abandon_rate",
            "bot_rate",
            "duplicate_rate",
            "email_channel_rate",
            "in_progress_rate",
        ):
            value = getattr(self, f)
            if not 0.0 <= value <= 1.0:
                raise errors.invalid_param(_camel(f), "expected a number from 0 to 1")
        if self.spread_days < 0:
            raise errors.invalid_param("spreadDays", "must not be negative")

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Profile:
        kwargs: dict[str, float] = {}
        for f in fields(cls):
            key = _camel(f.name)
            if key in body:
                value = body[key]
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise errors.invalid_param(key, "expected a number")
                kwargs[f.name] = float(value)
        return cls(**kwargs)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


@dataclass
class Person:
    first_name: str
    last_name: str
    email: str
    sentiment: float
    bot: bool
    duplicate: bool
    channel: str


class Simulator:
    """Generate (``generate``) or generate and record (``run``) responses for one survey."""

    def __init__(
        self,
        state: SandboxState,
        survey_id: str,
        *,
        seed: int | None = None,
        profile: Profile | None = None,
        now: datetime | None = None,
        distribution_id: str | None = None,
    ) -> None:
        self.state = state
        with state.lock:
            self.survey: Survey = state.get_survey(survey_id)
        self.rng = random.Random(seed)
        self.profile = profile or Profile()
        self.now = now
        self._emails: list[str] = []
        self._fraud = set(self.survey.fraud_fields())
        self._question_ids = self.survey.ordered_question_ids()
        self.distribution_id = distribution_id
        self._current_contact: dict[str, Any] | None = None
        # Contacts of the distribution who have not answered yet; each responds once.
        self._recipients: list[dict[str, Any]] = []
        if distribution_id is not None:
            d = state.directory.distribution(distribution_id)
            if d["surveyLink"]["surveyId"] != survey_id:
                raise errors.invalid_param(
                    "distributionId", f"{distribution_id} does not distribute {survey_id}"
                )
            self._recipients = state.directory.recipients_for_simulation(distribution_id)
            if not self._recipients:
                raise errors.invalid_param(
                    "distributionId", f"every recipient of {distribution_id} has already responded"
                )

    # -- people ------------------------------------------------------------------------
    def person(self) -> Person:
        rng, p = self.rng, self.profile
        if self._recipients:
            contact = self._recipients.pop(0)
            self._current_contact = contact
            self._emails.append(contact.get("email") or "")
            return Person(
                first_name=contact.get("firstName") or rng.choice(FIRST_NAMES),
                last_name=contact.get("lastName") or rng.choice(LAST_NAMES),
                email=contact.get("email") or "",
                sentiment=rng.betavariate(4, 2),
                bot=False,
                duplicate=False,
                channel="email",
            )
        if self.distribution_id is not None:
            raise errors.invalid_param(
                "count", f"more respondents than recipients left in {self.distribution_id}"
            )
        self._current_contact = None
        bot = rng.random() < p.bot_rate
        duplicate = bool(self._emails) and rng.random() < p.duplicate_rate
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        if duplicate:
            email = rng.choice(self._emails)
        else:
            local = f"{first}.{last}".lower().encode("ascii", "ignore").decode() or "user"
            email = f"{local}{rng.randint(1, 9999)}@{rng.choice(DOMAINS)}"
            self._emails.append(email)
        return Person(
            first_name=first,
            last_name=last,
            email=email,
            sentiment=rng.betavariate(4, 2),  # most customers are fairly happy
            bot=bot,
            duplicate=duplicate,
            channel="email" if rng.random() < p.email_channel_rate else "anonymous",
        )

    # -- answers -----------------------------------------------------------------------
    def _scale_pick(self, n: int, sentiment: float) -> int:
        """Index 0..n-1 on an ordered scale, centred on the person's sentiment."""
        centre = sentiment * (n - 1)
        return max(0, min(n - 1, round(self.rng.gauss(centre, 0.8))))

    def _text(self, question: Question, person: Person) -> str:
        rng = self.rng
        tag = question.tag.lower()
        if question.content_type == "ValidEmail" or "email" in tag:
            return person.email
        if "first" in tag:
            return person.first_name
        if "last" in tag:
            return person.last_name
        if person.bot:
            return (
                "".join(
                    rng.choice(string.ascii_lowercase + " ") for _ in range(rng.randint(5, 25))
                ).strip()
                or "asdf"
            )
        if rng.random() < 0.35:
            return ""
        pool = (
            POSITIVE if person.sentiment > 0.66 else NEUTRAL if person.sentiment > 0.4 else NEGATIVE
        )
        return rng.choice(pool)

    def answer(self, question: Question, person: Person, values: dict[str, Any]) -> None:
        rng = self.rng
        qid = question.qid
        if question.type == "MC":
            if question.is_nps:
                score = (
                    10
                    if person.bot
                    else max(0, min(10, round(rng.gauss(3 + 7 * person.sentiment, 1.5))))
                )
                values[qid] = score
                values[f"{qid}_NPS_GROUP"] = nps_group(score)
            elif question.is_multi:
                picked = [c for c in question.choices if rng.random() < 0.3] or [
                    rng.choice(question.choices)
                ]
                values[qid] = [c.code for c in picked]
                for c in picked:
                    if c.text_entry:
                        values[f"{qid}_{c.id}_TEXT"] = rng.choice(
                            ["Something else", "n/a", "See comment"]
                        )
            else:
                n = len(question.choices)
                if person.bot:
                    idx = 0
                elif n == 5 or n == 7:  # an ordered satisfaction/agreement scale
                    idx = self._scale_pick(n, person.sentiment)
                else:
                    idx = rng.randrange(n)
                choice = question.choices[idx]
                values[qid] = int(choice.code) if choice.code.isdecimal() else choice.code
                if choice.text_entry:
                    values[f"{qid}_{choice.id}_TEXT"] = "Self-described"
        elif question.type == "TE":
            if question.selector == "FORM":
                for c in question.choices:
                    values[f"{qid}_{c.id}"] = self._text(question, person)
            else:
                text = self._text(question, person)
                if text:
                    values[f"{qid}_TEXT"] = text
        elif question.type == "Matrix":
            n = len(question.answers)
            for row in question.choices:
                idx = n - 1 if person.bot else self._scale_pick(n, person.sentiment)
                code = question.answers[idx].code
                values[f"{qid}_{row.id}"] = int(code) if code.isdecimal() else code
        elif question.type == "Slider":
            lo = int(question.configuration.get("CSSliderMin", 0))
            hi = int(question.configuration.get("CSSliderMax", 100))
            for c in question.choices:
                value = (
                    hi
                    if person.bot
                    else round(rng.gauss(lo + (hi - lo) * person.sentiment, (hi - lo) / 6))
                )
                values[f"{qid}_{c.id}"] = max(lo, min(hi, value))
        elif question.type == "RO":
            order = list(question.choices)
            if not person.bot:
                rng.shuffle(order)
            for rank, c in enumerate(order, start=1):
                values[f"{qid}_{c.id}"] = rank

    def _embedded(self, person: Person, values: dict[str, Any]) -> None:
        rng = self.rng
        for name, default in self.survey.embedded_fields():
            if name == "ResponseEventContext":
                values[name] = f"ctx-{rng.randrange(16**8):08x}"
            elif name in EMBEDDED_VALUES:
                values[name] = rng.choice(EMBEDDED_VALUES[name])
            elif default is not None:
                values[name] = default
            elif name.endswith("_id") or name.endswith("Id"):
                values[name] = f"{name.split('_')[0][:4].upper()}-{rng.randrange(10**6):06d}"
        if not self._fraud:
            return
        bot, dup = person.bot, person.duplicate
        if "Q_RecaptchaScore" in self._fraud:
            score = (
                rng.uniform(0.0, 0.3)
                if bot
                else rng.choice([0.7, 0.9, 0.9, 1.0])
                if rng.random() > 0.05
                else 0.5
            )
            values["Q_RecaptchaScore"] = round(score, 1)
        if "Q_RelevantIDDuplicate" in self._fraud:
            values["Q_RelevantIDDuplicate"] = "true" if dup else "false"
            values["Q_RelevantIDDuplicateScore"] = (
                rng.randint(75, 100) if dup else rng.randint(0, 20)
            )
            values["Q_RelevantIDFraudScore"] = rng.randint(30, 120) if bot else rng.randint(0, 25)
            last = (self._anchor() - timedelta(days=rng.uniform(0, 30))) if dup else None
            values["Q_RelevantIDLastStartDate"] = last.strftime("%Y-%m-%d %H:%M:%S") if last else ""
        if "Q_BallotBoxStuffing" in self._fraud and dup and rng.random() < 0.5:
            values["Q_BallotBoxStuffing"] = "true"

    def _anchor(self) -> datetime:
        return self.now or utcnow()

    # -- one respondent ------------------------------------------------------------------
    def generate_one(self) -> tuple[dict[str, Any], Person]:
        rng, p = self.rng, self.profile
        person = self.person()
        values: dict[str, Any] = {}
        answerable = [q for q in self._question_ids if self.survey.questions[q].type != "DB"]
        abandon = not person.bot and rng.random() < p.abandon_rate and len(answerable) > 1
        stop_at = rng.randrange(1, len(answerable)) if abandon else len(answerable)
        for qid in answerable[:stop_at]:
            self.answer(self.survey.questions[qid], person, values)
        self._embedded(person, values)
        duration = rng.randint(4, 25) if person.bot else int(rng.lognormvariate(5.3, 0.5))
        end = self._anchor() - timedelta(seconds=rng.uniform(0, p.spread_days * 86400))
        start = end - timedelta(seconds=duration)
        lat, lon = rng.choice(CITIES)
        values.update(
            startDate=iso(start),
            endDate=iso(end),
            status=0,
            ipAddress=".".join(
                str(rng.randint(lo, hi)) for lo, hi in ((11, 223), (0, 255), (0, 255), (1, 254))
            ),
            progress=100 if not abandon else max(1, round(100 * stop_at / len(answerable))),
            duration=duration,
            finished=0 if abandon else 1,
            locationLatitude=f"{lat + rng.uniform(-0.05, 0.05):.4f}",
            locationLongitude=f"{lon + rng.uniform(-0.05, 0.05):.4f}",
            distributionChannel=person.channel,
            userLanguage=self.survey.language,
        )
        if p.spread_days:
            values["recordedDate"] = iso(end + timedelta(seconds=1), millis=True)
        if person.channel == "email":
            contact = self._current_contact
            ext = contact.get("extRef") if contact else None
            values.update(
                recipientFirstName=person.first_name,
                recipientLastName=person.last_name,
                recipientEmail=person.email,
                externalDataReference=ext or f"EXT-{rng.randrange(10**6):06d}",
            )
            if contact:
                for key, value in (contact.get("embeddedData") or {}).items():
                    values.setdefault(key, value)
        return values, person

    def generate(self, count: int) -> list[dict[str, Any]]:
        """``count`` response value dicts, without recording them (deterministic)."""
        return [self.generate_one()[0] for _ in range(count)]

    def run(self, count: int) -> list[Response]:
        """Generate and record ``count`` responses (firing webhooks as real ones would)."""
        if self.distribution_id is not None and count > len(self._recipients):
            raise errors.invalid_param(
                "count",
                f"only {len(self._recipients)} recipients of {self.distribution_id} "
                "can still respond",
            )
        made: list[Response] = []
        directory = self.state.directory
        for _ in range(count):
            values, person = self.generate_one()
            if self.profile.in_progress_rate and self.rng.random() < self.profile.in_progress_rate:
                values["finished"] = 0
                values["progress"] = min(int(values["progress"]), 99)
                made.append(self.state.record_response(self.survey.id, values, in_progress=True))
                continue
            contact = self._current_contact
            recipient = None
            if contact is not None:
                recipient = str(contact["contactId"])
            elif person.channel == "email":
                alnum = string.ascii_letters + string.digits
                recipient = "CID_" + "".join(self.rng.choice(alnum) for _ in range(15))
            if recipient is not None:
                self.state.start_session(
                    self.survey.id,
                    recipient_id=recipient,
                    distribution_id=self.distribution_id,
                    context=str(values.get("ResponseEventContext", "")),
                )
            response = self.state.record_response(
                self.survey.id,
                values,
                recipient_id=recipient,
                distribution_id=self.distribution_id if contact is not None else None,
            )
            if contact is not None and self.distribution_id is not None:
                directory.note_response(
                    self.distribution_id,
                    recipient or "",
                    response.id,
                    finished=response.finished,
                    at=str(response.values["recordedDate"])[:19] + "Z",
                )
            made.append(response)
        return made
