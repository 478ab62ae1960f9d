"""Every model a public model's field holds can be imported from ``qualflow.qualtrics.models``,
so callers can annotate what they read (``distribution.survey_link``…) under ``mypy --strict``."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import Any

import pydantic

from qualflow.qualtrics import models


def _models_in(annotation: Any) -> Iterator[type[pydantic.BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        yield annotation
    for argument in typing.get_args(annotation):
        yield from _models_in(argument)


def test_models_held_by_public_models_are_exported() -> None:
    exported = {getattr(models, name) for name in models.__all__}
    public = [m for m in exported if isinstance(m, type) and issubclass(m, pydantic.BaseModel)]
    missing = {
        f"{owner.__name__}.{field}: {held.__name__}"
        for owner in public
        for field, info in owner.model_fields.items()
        for held in _models_in(info.annotation)
        if held not in exported and not held.__name__.startswith("_")
    }
    assert not missing, sorted(missing)
