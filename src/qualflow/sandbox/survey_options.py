"""The ``SurveyOptions`` of a survey: the fields a real survey definition holds.

The static defaults are those of the recorded real definition
(tests/fixtures/qualtrics-recorded/get_survey_definition.json), except that ballot-box stuffing
prevention is off (the sandbox's seeds turn it on where they want it). The survey's own fields
(name, language, dates, response set) are not stored with the options but read from the survey
whenever they are served (:meth:`Survey.survey_options`), so they never disagree with the rest
of the definition.
"""

from __future__ import annotations

import copy
from typing import Any

_DEFAULTS: dict[str, Any] = {
    "BackButton": "false",
    "SaveAndContinue": "true",
    "SurveyProtection": "PublicSurvey",
    "BallotBoxStuffingPrevention": "false",
    "NoIndex": "Yes",
    "SecureResponseFiles": "true",
    "SurveyExpiration": None,
    "SurveyTermination": "DefaultMessage",
    "Header": "",
    "Footer": "",
    "ProgressBarDisplay": "None",
    "PartialData": "+1 week",
    "ValidationMessage": None,
    "PreviousButton": " ← ",
    "NextButton": " → ",
    "SkinLibrary": "Qualtrics",
    "SkinType": "MQ",
    "Skin": "xmskin",
    "NewScoring": 1,
    "libraryId": "",
    "nextButtonMid": "",
    "previousButtonMid": "",
    "headerMid": "",
    "footerMid": "",
    "QuestionsPerPage": "",
    "PageTransition": "None",
    "Autofocus": "false",
    "Autoadvance": "false",
    "AutoadvancePages": "false",
    "ExternalCSS": None,
    "CustomStyles": {
        "errorStyles": {
            "selector": ".Skin .ValidationError",
            "styles": {"color": None, "backgroundColor": None, "borderColor": None},
        },
        "errorStylesBG": {
            "selector": ".Skin .HeaderValidationError, .Skin .HeaderValidationError li a",
            "styles": {"color": None, "backgroundColor": None},
        },
        "pageStyles": {"selector": "#SurveyEngineBody", "styles": {"backgroundColor": None}},
        "textStyles": {
            "selector": ".SkinInner",
            "styles": {
                "fontFamily": None,
                "fontSize": None,
                "fontWeight": None,
                "fontStyle": None,
                "textDecoration": None,
                "color": None,
            },
        },
        "questionStyles": {
            "selector": ".Skin .QuestionText",
            "styles": {
                "fontFamily": None,
                "fontSize": None,
                "fontWeight": None,
                "fontStyle": None,
                "textDecoration": None,
                "color": None,
            },
        },
        "choiceStyles": {
            "selector": ".Skin .horizontalbar th.ylabel, "
            ".Skin .Matrix table td, .Skin "
            ".Matrix table th, .Skin .Matrix "
            "table thead th, .Skin .Matrix table "
            "thead td, .Skin .PGR .DragAndDrop "
            ".Items label, .Skin .QuestionBody "
            "ul.ChoiceStructure, .Skin .PGR "
            ".DragAndDrop .Group ul, .Skin .PGR "
            ".DragAndDrop .Group h2, .Skin .PGR "
            ".DragAndDrop .Items ul, .Skin .PGR "
            ".DragAndDrop .Items h2, .Skin .DD "
            ".QuestionBody table.ChoiceStructure, "
            ".Skin .PGR .DragAndDrop .NoColumns "
            "td.groupsContainerTd div ul, .Skin "
            ".PGR .DragAndDrop .NoColumns "
            "td.groupsContainerTd div h2, .Skin "
            ".SBS thead th, .Skin .SBS td, .Skin "
            ".SBS .Answers td, .Skin .SBS "
            ".Answers th, .SBS "
            "table.ChoiceStructure, .Skin "
            ".horizontalbar thead "
            "table.LabelDescriptions tr td, .Skin "
            ".horizontalbar thead tr "
            "td.NotApplicable, .QuestionBody th, "
            ".Skin .QuestionBody .MC .MAVR label, "
            ".Skin .QuestionBody .MC .SAVR label, "
            ".Skin .SBS thead th, .Skin .SBS td, "
            ".Skin .RO .DND ul li, .Skin .reg, "
            ".SkinInner .ChoiceStructure, .Skin "
            "thead, .Skin .GAP .ChoiceStructure "
            "thead th, .Skin .GAP "
            ".ChoiceStructure .c4, .Skin .GAP "
            ".ChoiceStructure th, .Skin .GAP "
            ".ChoiceStructure .WhyText, "
            ".SkinInner .ChoiceStructure "
            ".LightBG, .Skin "
            ".QuestionOuter.Highlight .Inner "
            ".reg, .Skin .QuestionOuter.Highlight "
            ".Inner .alt, .Skin "
            ".QuestionOuter.Highlight .Inner "
            ".ReadableAlt       ",
            "styles": {
                "fontFamily": None,
                "fontSize": None,
                "fontWeight": None,
                "fontStyle": None,
                "textDecoration": None,
                "color": None,
            },
        },
        "headerStyles": {"selector": ".Skin div#Header", "styles": {"color": None}},
        "footerStyles": {"selector": ".Skin #Footer", "styles": {"color": None}},
        "questionSeparatorStyles": {
            "selector": ".Skin .Separator",
            "styles": {"backgroundColor": None, "display": None},
        },
        "highlightStyles": {
            "selector": ".Skin .QuestionOuter.Highlight "
            ".Inner, .Skin "
            ".QuestionOuter.Highlight .Inner "
            ".reg, .Skin "
            ".QuestionOuter.Highlight .Inner "
            ".alt, .Skin "
            ".QuestionOuter.Highlight .Inner "
            ".ReadableAlt",
            "styles": {"backgroundColor": None},
        },
        "highlightStylesAlt": {
            "selector": ".Skin .QuestionOuter.Highlight "
            ".Inner .ReadableAlt, .Skin "
            ".QuestionOuter.Highlight "
            ".Inner .LightBG",
            "styles": {"backgroundColor": None},
        },
        "textEntryStyles": {
            "selector": ".Skin select, .Skin .InputText",
            "styles": {"color": None},
        },
        "borderStyles": {
            "selector": ".Skin .CS .horizontalbar "
            "table.sliderGrid tr.xlabel th, .Skin "
            ".CS .horizontalbar .ylabel, .Skin "
            ".CS .horizontalbar table.sliderGrid "
            "tr td.value, .Skin .Slider "
            ".horizontalbar table.sliderGrid "
            "tr.xlabel th, .Skin .BorderColor, "
            ".Skin .DarkBorderColor, .Skin "
            ".Slider .horizontalbar "
            "table.sliderGrid tr td.value, .Skin "
            "thead, .Skin .GAP .ChoiceStructure "
            "thead th  ",
            "styles": {"borderColor": None},
        },
        "altRowStyles": {
            "selector": ".Skin .ReadableAlt, .Skin .LightBG",
            "styles": {"backgroundColor": None},
        },
        "customCSS": None,
    },
    "HighlightQuestions": "off",
    "EOSMessage": "",
    "ShowExportTags": "false",
    "CollectGeoLocation": "false",
    "SurveyTitle": "Online Survey Software | Qualtrics Survey Solutions",
    "SurveyMetaDescription": "Qualtrics sophisticated online survey software solutions make "
    "creating online surveys easy. Learn more about Research Suite "
    "and get a free account today.",
    "PasswordProtection": "No",
    "AnonymizeResponse": "No",
    "Password": "",
    "RefererCheck": "No",
    "RefererURL": "http://",
    "BallotBoxStuffingPreventionBehavior": "DefaultMessage",
    "BallotBoxStuffingPreventionMessage": "",
    "BallotBoxStuffingPreventionMessageLibrary": "",
    "BallotBoxStuffingPreventionURL": None,
    "RecaptchaV3": "false",
    "ConfirmStart": False,
    "AutoConfirmStart": False,
    "RelevantID": "false",
    "UseCustomSurveyLinkCompletedMessage": None,
    "SurveyLinkCompletedMessage": "",
    "SurveyLinkCompletedMessageLibrary": "",
    "ResponseSummary": "No",
    "EOSMessageLibrary": "",
    "EOSRedirectURL": "https://",
    "EmailThankYou": "false",
    "ThankYouEmailMessageLibrary": None,
    "ThankYouEmailMessage": None,
    "ValidateMessage": "false",
    "ValidationMessageLibrary": None,
    "InactiveSurvey": "DefaultMessage",
    "PartialDataCloseAfter": "LastActivity",
    "InactiveMessageLibrary": "",
    "InactiveMessage": "",
}


def default_survey_options() -> dict[str, Any]:
    """SurveyOptions of a new survey (its own fields are added when served)."""
    return copy.deepcopy(_DEFAULTS)
