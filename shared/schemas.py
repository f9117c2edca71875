"""Pydantic building blocks every API shares: strict bodies, pages, codes and slugs.

Strict bodies refuse unknown fields, so a misspelt field is a 422 rather than silently ignored."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from shared.text import StorableText

Code = Annotated[str, Field(pattern=r"^[A-Z]{2}$", examples=["FR"])]


Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$", examples=["telegram"])]


ShortText = Annotated[StorableText, Field(min_length=1, max_length=200)]


MAX_PAGE = 100


T = TypeVar("T")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None
