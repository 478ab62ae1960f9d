"""Realistic seed surveys, built the way Qualtrics stores them (definitions shape).

Four built-in surveys mirror what qualflow's users run: a customer-satisfaction survey with NPS,
a research screener, a panel sign-up form and an employee pulse. :func:`generated_survey` makes
any number of further surveys from a seed, deterministically.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from qualflow.sandbox import ids
from qualflow.sandbox.filters import finished_responses
from qualflow.sandbox.model import Block, Question, Survey
from qualflow.sandbox.state import SandboxState, iso, utcnow
from qualflow.sandbox.survey_options import default_survey_options

AGREE_5 = ["Strongly disagree", "Disagree", "Neither agree nor disagree", "Agree", "Strongly agree"]
SATISFIED_5 = [
    "Extremely dissatisfied",
    "Somewhat dissatisfied",
    "Neither satisfied nor dissatisfied",
    "Somewhat satisfied",
    "Extremely satisfied",
]


class SurveyBuilder:
    """Small helper that assembles questions, blocks, flow and embedded data."""

    def __init__(self, name: str, *, category: str = "CORE", project_type: str = "Survey") -> None:
        self.name = name
        self.category = category
        self.project_type = project_type
        self.questions: list[Question] = []
        self.blocks: list[Block] = []
        self.embedded: list[tuple[str, str | None, str]] = []
        self.options = default_survey_options()
        self._n = 0

    def block(self, description: str) -> SurveyBuilder:
        kind = "Default" if not self.blocks else "Standard"
        self.blocks.append(Block(ids.block_id(), description, kind))
        return self

    def embedded_data(
        self, name: str, value: str | None = None, kind: str = "Custom"
    ) -> SurveyBuilder:
        self.embedded.append((name, value, kind))
        return self

    def fraud_detection(
        self, *, recaptcha: bool = True, relevant_id: bool = True, ballot_box: bool = True
    ) -> SurveyBuilder:
        self.options["RecaptchaV3"] = "true" if recaptcha else "false"
        self.options["RelevantID"] = "true" if relevant_id else "false"
        self.options["BallotBoxStuffingPrevention"] = "true" if ballot_box else "false"
        return self

    def _add(self, definition: dict[str, Any], *, page_break: bool = False) -> str:
        self._n += 1
        qid = f"QID{self._n}"
        definition.setdefault("DataExportTag", f"Q{self._n}")
        question = Question.from_definition(qid, definition)
        self.questions.append(question)
        block = self.blocks[-1]
        if page_break and block.elements:
            block.elements.append({"Type": "Page Break"})
        block.elements.append({"Type": "Question", "QuestionID": qid})
        return qid

    @staticmethod
    def _choices(labels: Sequence[str], other: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i, label in enumerate(labels, start=1):
            entry: dict[str, Any] = {"Display": label}
            if other == i:
                entry["TextEntry"] = "true"
            out[str(i)] = entry
        return out

    def mc(
        self,
        text: str,
        labels: Sequence[str],
        *,
        multi: bool = False,
        horizontal: bool = False,
        required: bool = True,
        other: int | None = None,
        tag: str | None = None,
    ) -> str:
        selector = (
            ("MAHR" if horizontal else "MAVR") if multi else ("SAHR" if horizontal else "SAVR")
        )
        d: dict[str, Any] = {
            "QuestionText": text,
            "QuestionType": "MC",
            "Selector": selector,
            "SubSelector": "TX",
            "Choices": self._choices(labels, other),
            "ChoiceOrder": [str(i) for i in range(1, len(labels) + 1)],
            "Validation": {
                "Settings": {"ForceResponse": "ON" if required else "OFF", "Type": "None"}
            },
        }
        if tag:
            d["DataExportTag"] = tag
        return self._add(d, page_break=True)

    def nps(self, text: str, *, tag: str | None = None) -> str:
        d: dict[str, Any] = {
            "QuestionText": text,
            "QuestionType": "MC",
            "Selector": "NPS",
            "Choices": {str(i): {"Display": str(i)} for i in range(11)},
            "ChoiceOrder": [str(i) for i in range(11)],
            "Configuration": {"ColumnLabels": ["Not at all likely", "Extremely likely"]},
            "Validation": {"Settings": {"ForceResponse": "ON", "Type": "None"}},
        }
        if tag:
            d["DataExportTag"] = tag
        return self._add(d, page_break=True)

    def text(
        self,
        text: str,
        *,
        multiline: bool = False,
        required: bool = False,
        content_type: str | None = None,
        tag: str | None = None,
    ) -> str:
        settings: dict[str, Any] = {"ForceResponse": "ON" if required else "OFF", "Type": "None"}
        if content_type:
            settings.update(Type="ContentType", ContentType=content_type)
        d: dict[str, Any] = {
            "QuestionText": text,
            "QuestionType": "TE",
            "Selector": "ML" if multiline else "SL",
            "Validation": {"Settings": settings},
        }
        if tag:
            d["DataExportTag"] = tag
        return self._add(d)

    def matrix(
        self,
        text: str,
        rows: Sequence[str],
        scale: Sequence[str],
        *,
        randomize_rows: bool = False,
        tag: str | None = None,
    ) -> str:
        d: dict[str, Any] = {
            "QuestionText": text,
            "QuestionType": "Matrix",
            "Selector": "Likert",
            "SubSelector": "SingleAnswer",
            "Choices": self._choices(rows),
            "Answers": self._choices(scale),
            "Validation": {"Settings": {"ForceResponse": "OFF", "Type": "None"}},
        }
        if randomize_rows:
            # The QSF shape of "Randomize the order of all choices".
            d["Randomization"] = {"Advanced": None, "TotalRandSubset": "", "Type": "All"}
        if tag:
            d["DataExportTag"] = tag
        return self._add(d, page_break=True)

    def slider(
        self, text: str, items: Sequence[str], *, lo: int = 0, hi: int = 10, tag: str | None = None
    ) -> str:
        d: dict[str, Any] = {
            "QuestionText": text,
            "QuestionType": "Slider",
            "Selector": "HSLIDER",
            "Choices": self._choices(items),
            "Configuration": {
                "CSSliderMin": lo,
                "CSSliderMax": hi,
                "GridLines": hi - lo,
                "NumDecimals": "0",
            },
            "Validation": {"Settings": {"ForceResponse": "OFF", "Type": "None"}},
        }
        if tag:
            d["DataExportTag"] = tag
        return self._add(d, page_break=True)

    def rank(self, text: str, items: Sequence[str], *, tag: str | None = None) -> str:
        d: dict[str, Any] = {
            "QuestionText": text,
            "QuestionType": "RO",
            "Selector": "DND",
            "SubSelector": "TX",
            "Choices": self._choices(items),
            "Validation": {"Settings": {"ForceResponse": "OFF", "Type": "None"}},
        }
        if tag:
            d["DataExportTag"] = tag
        return self._add(d, page_break=True)

    def descriptive(self, text: str) -> str:
        return self._add({"QuestionText": text, "QuestionType": "DB", "Selector": "TB"})

    def build(
        self, state: SandboxState, *, owner_id: str | None = None, active: bool = True
    ) -> Survey:
        owner = owner_id or state.default_user()[0].id
        now = iso(utcnow())
        flow: list[dict[str, Any]] = []
        n = 2
        if self.embedded:
            flow.append(
                {
                    "Type": "EmbeddedData",
                    "FlowID": f"FL_{n}",
                    "EmbeddedData": [
                        {
                            "Description": name,
                            "Type": kind,
                            "Field": name,
                            "VariableType": "String",
                            "DataVisibility": [],
                            "AnalyzeText": False,
                            **({"Value": value} if value is not None else {}),
                        }
                        for name, value, kind in self.embedded
                    ],
                }
            )
            n += 1
        for block in self.blocks:
            flow.append(
                {
                    "Type": "Block" if block.type == "Default" else "Standard",
                    "ID": block.id,
                    "FlowID": f"FL_{n}",
                }
            )
            n += 1
        flow.append({"Type": "EndSurvey", "FlowID": f"FL_{n}"})
        survey = Survey(
            id=ids.survey_id(),
            name=self.name,
            owner_id=owner,
            brand_id=state.config.brand_id,
            creation_date=now,
            last_modified=now,
            is_active=active,
            last_activated=now if active else None,
            project_category=self.category,
            project_type=self.project_type,
            questions={q.qid: q for q in self.questions},
            blocks={b.id: b for b in self.blocks},
            flow=flow,
            options=self.options,
            filters=[finished_responses(now)],
        )
        return state.add_survey(survey)


CUSTOMER_SATISFACTION = "Customer Satisfaction & NPS"
RESEARCH_SCREENER = "Research Screener: Mobile Banking Study"
PANEL_SIGNUP = "Research Panel Sign-Up"
EMPLOYEE_PULSE = "Employee Pulse Q3"


def customer_satisfaction(state: SandboxState, **kw: Any) -> Survey:
    b = SurveyBuilder(
        CUSTOMER_SATISFACTION, category="CX", project_type="CustomerSatisfactionScore"
    )
    b.embedded_data("ResponseEventContext").embedded_data("customer_id").embedded_data("order_id")
    b.embedded_data("channel", "web")
    b.block("Overall satisfaction")
    b.mc("Overall, how satisfied are you with your recent purchase?", SATISFIED_5)
    b.nps("How likely are you to recommend us to a friend or colleague?")
    b.block("Experience")
    b.matrix(
        "How much do you agree with the following statements?",
        [
            "The checkout was easy",
            "Delivery was on time",
            "The product matched its description",
            "Support was helpful",
        ],
        AGREE_5,
        randomize_rows=True,
    )
    b.mc(
        "Which of these did you contact us about?",
        ["Billing", "Delivery", "Returns", "Product questions", "Other"],
        multi=True,
        required=False,
        other=5,
    )
    b.text("What is the one thing we could do better?", multiline=True)
    return b.build(state, **kw)


def research_screener(state: SandboxState, **kw: Any) -> Survey:
    b = SurveyBuilder(RESEARCH_SCREENER, category="CORE", project_type="Survey")
    b.embedded_data("rallyParticipantId").embedded_data("study_id", "STUDY-2024-017").embedded_data(
        "source"
    )
    b.fraud_detection()
    b.block("Screening")
    b.descriptive("Thanks for your interest in our study. A few questions to see if it is a fit.")
    b.mc(
        "How old are you?", ["Under 18", "18-24", "25-34", "35-44", "45-54", "55-64", "65 or older"]
    )
    b.mc(
        "How often do you use a mobile banking app?",
        ["Daily", "A few times a week", "Weekly", "Monthly", "Never"],
    )
    b.mc(
        "Which banking apps have you used in the past 3 months?",
        ["Chase", "Bank of America", "Wells Fargo", "Revolut", "Monzo", "Other"],
        multi=True,
        other=6,
    )
    b.mc("Do you work in banking, fintech or market research?", ["Yes", "No"], horizontal=True)
    b.mc("Are you available for a 45-minute video interview next week?", ["Yes", "No", "Maybe"])
    b.text("What is your email address?", required=True, content_type="ValidEmail", tag="email")
    return b.build(state, **kw)


def panel_signup(state: SandboxState, **kw: Any) -> Survey:
    b = SurveyBuilder(PANEL_SIGNUP, category="CORE", project_type="Survey")
    b.embedded_data("source").embedded_data("utm_campaign").embedded_data("referrer_id")
    b.fraud_detection(relevant_id=True, recaptcha=True, ballot_box=True)
    b.block("About you")
    b.text("First name", required=True, tag="first_name")
    b.text("Last name", required=True, tag="last_name")
    b.text("Email address", required=True, content_type="ValidEmail", tag="email")
    b.block("Demographics")
    b.mc("Age", ["18-24", "25-34", "35-44", "45-54", "55-64", "65+"], tag="age")
    b.mc(
        "Gender",
        ["Woman", "Man", "Non-binary", "Prefer to self-describe", "Prefer not to say"],
        other=4,
        tag="gender",
    )
    b.mc(
        "Country",
        ["United States", "Canada", "United Kingdom", "Germany", "France", "Australia", "Other"],
        tag="country",
    )
    b.mc(
        "Employment",
        ["Full-time", "Part-time", "Self-employed", "Student", "Retired", "Not employed"],
        tag="employment",
    )
    b.mc(
        "Which devices do you use regularly?",
        ["iPhone", "Android phone", "iPad / tablet", "Mac", "Windows PC", "Smart TV"],
        multi=True,
        tag="devices",
    )
    b.block("Consent")
    b.mc(
        "I agree to be contacted about research studies and to the privacy policy.",
        ["I agree", "I do not agree"],
        tag="consent",
    )
    return b.build(state, **kw)


def employee_pulse(state: SandboxState, **kw: Any) -> Survey:
    b = SurveyBuilder(EMPLOYEE_PULSE, category="EX", project_type="EmployeeEngagement")
    b.embedded_data("department").embedded_data("location").embedded_data("tenure_band")
    b.block("Engagement")
    b.slider(
        "On a scale of 0-10, how would you rate…",
        ["Your workload", "Your team's collaboration", "Your manager's support"],
    )
    b.matrix(
        "How much do you agree with the following?",
        [
            "I feel valued at work",
            "I have the tools I need",
            "I see myself here in two years",
            "Communication from leadership is clear",
        ],
        AGREE_5,
    )
    b.rank(
        "Rank these benefits from most to least important to you.",
        ["Flexible hours", "Remote work", "Learning budget", "Health insurance", "Extra vacation"],
    )
    b.nps("How likely are you to recommend this company as a place to work? (eNPS)", tag="eNPS")
    b.text("Anything else you would like leadership to know?", multiline=True)
    return b.build(state, **kw)


BUILTIN_SURVEYS = (customer_satisfaction, research_screener, panel_signup, employee_pulse)
#: Each built-in survey's name (seeding twice finds them by it instead of adding copies).
BUILTIN_NAMES = {
    customer_satisfaction: CUSTOMER_SATISFACTION,
    research_screener: RESEARCH_SCREENER,
    panel_signup: PANEL_SIGNUP,
    employee_pulse: EMPLOYEE_PULSE,
}

_TOPICS = [
    "Onboarding",
    "Website",
    "Mobile App",
    "Support",
    "Pricing",
    "Event",
    "Product",
    "Webinar",
]


def generated_survey(
    state: SandboxState, rng: random.Random, *, owner_id: str | None = None
) -> Survey:
    """A plausible generated survey (deterministic for a given ``rng`` state and sandbox),
    owned by ``owner_id`` (default: the first user with a token).

    Its name is numbered after the same topic's surveys the sandbox already holds, so surveys
    added one call at a time (as ``qualflow sandbox seed --url`` does) are told apart."""
    topic = rng.choice(_TOPICS)
    b = SurveyBuilder(
        _next_name(state, f"{topic} Feedback #"), category=rng.choice(["CX", "CORE", "EX"])
    )
    b.embedded_data("ResponseEventContext").embedded_data("segment")
    if rng.random() < 0.4:
        b.fraud_detection(ballot_box=rng.random() < 0.5)
    b.block(f"{topic} questions")
    b.mc(f"How satisfied are you with our {topic.lower()}?", SATISFIED_5)
    if rng.random() < 0.7:
        b.nps(f"How likely are you to recommend our {topic.lower()}?")
    if rng.random() < 0.5:
        b.matrix("Please rate the following", ["Quality", "Speed", "Value"], AGREE_5)
    if rng.random() < 0.4:
        b.slider("Rate from 0 to 10", ["Ease of use", "Design"])
    if rng.random() < 0.3:
        b.rank("Rank what matters most", ["Price", "Quality", "Support", "Speed"])
    b.text("Any other comments?", multiline=True)
    return b.build(state, owner_id=owner_id, active=rng.random() < 0.8)


def seed_builtin(
    state: SandboxState, *, owner_id: str | None = None, reuse_existing: bool = False
) -> list[Survey]:
    """Add the four built-in surveys, owned by ``owner_id`` (default: the first user with a
    token; a user sees only its own and shared surveys); returns them. With
    ``reuse_existing`` a built-in survey the owner already has (by name) is returned instead
    of being added again."""
    if not reuse_existing:
        return [make(state, owner_id=owner_id) for make in BUILTIN_SURVEYS]
    owner = owner_id or state.default_user()[0].id
    with state.lock:
        by_name = {s.name: s for s in state.surveys.values() if s.owner_id == owner}
    return [
        by_name.get(BUILTIN_NAMES[make]) or make(state, owner_id=owner_id)
        for make in BUILTIN_SURVEYS
    ]


def _next_name(state: SandboxState, prefix: str) -> str:
    with state.lock:
        taken = [s.name[len(prefix) :] for s in state.surveys.values() if s.name.startswith(prefix)]
    numbers = [int(suffix) for suffix in taken if suffix.isdigit()]
    return f"{prefix}{max(numbers, default=0) + 1}"


def seed_generated(
    state: SandboxState, count: int, *, seed: int = 0, owner_id: str | None = None
) -> list[Survey]:
    rng = random.Random(seed)
    return [generated_survey(state, rng, owner_id=owner_id) for _ in range(count)]
