"""Small SQL helpers shared by the monitor's stores."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, String, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY


def in_text_array(column: ColumnElement[Any], values: Iterable[str]) -> ColumnElement[bool]:
    """`column = ANY(:array)`: one parameter however many values (a long IN list or row-value IN of
    thousands costs a parameter each, or exhausts Postgres's parser stack)."""
    parameter = bindparam(None, sorted(set(values)), type_=ARRAY(String()))
    return column == any_(parameter)
