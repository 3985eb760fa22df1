"""The keyword options' type (for type checkers) matches their one declaration."""

from __future__ import annotations

import dataclasses
from typing import get_type_hints

from session_mw import _options
from session_mw._options import Keywords, Options


def test_every_option_is_a_keyword_and_nothing_else() -> None:
    assert list(get_type_hints(Keywords)) == [field.name for field in dataclasses.fields(Options)]


def test_each_keyword_takes_what_the_option_holds() -> None:
    # Callables may also be dotted paths, and a list of names any sequence: the keyword's type
    # is the option's, widened by what its check turns into it.
    options = get_type_hints(Options, vars(_options))
    keywords = get_type_hints(Keywords, vars(_options))
    widened = {
        "generator": str,
        "validator": str,
        "user_id": str,
    }
    for name, kind in options.items():
        if name == "id_attributes":
            assert str(keywords[name]) == "collections.abc.Sequence[str]"
        elif name in widened:
            assert keywords[name] == kind | widened[name], name
        else:
            assert keywords[name] == kind, name
