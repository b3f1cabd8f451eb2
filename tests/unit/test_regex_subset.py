"""Filters' regular expressions: the subset every engine reads alike and runs in linear time."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.sources.regex_subset import regex_problem


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        (r"^(.*)(.*)(.*)\3\2\1$", "back references"),
        (r"(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)(l)\12", "back references"),
        (r"(?=a)", "lookaround"),
        (r"(?<=a)b", "lookaround"),
        (r"(?!a)b", "lookaround"),
        (r"(?P<n>a)(?P=n)", "named"),
        (r"(?>a)", "atomic"),
        (r"(?i)abc", "flag"),
        (r"(?#comment)", "comment"),
        (r"a++", "possessive"),
        (r"a*+", "possessive"),
        (r"a**", "stacked"),
        (r"\m", "escape"),
        (r"\y", "escape"),
        (r"\b", "escape"),
        (r"\x41", "escape"),
        (r"\pL", "escape"),
        (r"***=a", "directors"),
        (r"[[.hyphen.]]", "collating"),
        (r"[[=a=]]", "equivalence"),
        (r"a{256}", "255"),
        (r"a{5,2}", "ordered"),
        (r"a{", "bound"),
        (r"[abc", "not closed"),
        ("a" * 1001, "longer than"),
        ("a\x00b", "NUL"),
        ("a\\", "backslash"),
    ],
)
def test_outside_the_subset(pattern: str, says: str) -> None:
    problem = regex_problem(pattern)
    assert problem is not None and says in problem, problem


@pytest.mark.parametrize(
    "pattern",
    [r"^foo.*bar$", r"[[:alpha:]]+", r"a{1,255}", r"(a|b)*?c", r"\{literal\}", r"[]a]", r"[^]a]+x", r"(?:ab)+",
     r"^[a-z0-9_.-]+@example\.com$", r"\d{3}-\d{4}", r"\s+\S*\w\W", r"(a{2}){3}", r"tab\there"],
)  # fmt: skip
def test_inside_the_subset(pattern: str) -> None:
    assert regex_problem(pattern) is None


@given(st.text(alphabet="ab()[]{}*+?|\\.^$-:=!<>P12dwxmy\x00", max_size=40))
def test_any_text_gets_an_answer_and_an_accepted_one_compiles(pattern: str) -> None:
    problem = regex_problem(pattern)  # never raises, whatever it is given
    assert problem is None or isinstance(problem, str)
    if problem is None:
        re.compile(pattern)
