"""Regular expressions of filters: the subset that means the same to PostgreSQL (which runs them), to RE2
(PostHog's store) and to Python, and that no engine runs in exponential time.

Refused: back references (and numeric escapes, which PostgreSQL reads as back references), lookahead and
lookbehind, named, atomic, comment and flag groups, possessive and stacked quantifiers, PostgreSQL's own
escapes and directors (`\\m`, `\\y`, `***=`), collating elements, and bounds over 255. Two checks, each on
its own: a lexical whitelist over the characters, and the structure Python's parser sees.
"""

import re
import re._constants as sre  # type: ignore[import-not-found]
import re._parser as sre_parse  # type: ignore[import-not-found]
import warnings

MAX_LENGTH = 1000
MAX_BOUND = 255
"""PostgreSQL's RE_DUP_MAX: a larger bound is a syntax error there."""
_CLASS_ESCAPES = set("dDsSwW")
_CHARACTER_ESCAPES = set("ntrfv")
_POSIX_CLASSES = {"alnum", "alpha", "blank", "cntrl", "digit", "graph", "lower", "print", "punct", "space", "upper",
                  "xdigit"}  # fmt: skip
_BOUND = re.compile(r"\{(\d{1,3})(,(\d{1,3})?)?\}")
_REFUSED = {
    sre.GROUPREF: "a back reference",
    sre.GROUPREF_EXISTS: "a conditional group",
    sre.ASSERT: "a lookahead or lookbehind",
    sre.ASSERT_NOT: "a negative lookahead or lookbehind",
    sre.ATOMIC_GROUP: "an atomic group",
    sre.POSSESSIVE_REPEAT: "a possessive quantifier",
}


def _lexical(pattern: str) -> None:
    """The characters of the pattern, read the way every engine reads them."""
    if len(pattern) > MAX_LENGTH:
        raise ValueError(f"it is longer than {MAX_LENGTH} characters")
    if "\x00" in pattern:
        raise ValueError("it contains NUL")
    if pattern.startswith("***"):
        raise ValueError("PostgreSQL's directors (***: and ***=) are not allowed")
    i, n, in_class, class_start, after_quantifier = 0, len(pattern), False, 0, False
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                raise ValueError("it ends with a backslash")
            e = pattern[i + 1]
            if e.isdigit():
                raise ValueError(f"\\{e}: back references and numeric escapes are not allowed")
            if not e.isascii() or (e.isalpha() and e not in _CLASS_ESCAPES | _CHARACTER_ESCAPES):
                raise ValueError(
                    f"the escape \\{e} is not allowed (only \\d \\D \\s \\S \\w \\W \\n \\t \\r \\f \\v and escaped "
                    "punctuation)"
                )
            i, after_quantifier = i + 2, False
            continue
        if in_class:
            if c == "[" and i + 1 < n and pattern[i + 1] in ".=:":
                kind = pattern[i + 1]
                end = pattern.find(kind + "]", i + 2)
                if kind != ":" or end < 0 or pattern[i + 2 : end] not in _POSIX_CLASSES:
                    raise ValueError("collating elements [. .], equivalence classes [= =] and unknown [: :] are "
                                     "not allowed")  # fmt: skip
                i = end + 2
                continue
            if c == "]" and i > class_start:
                in_class = False
            i += 1
            continue
        if c == "[":
            in_class, i = True, i + 1
            if i < n and pattern[i] == "^":
                i += 1
            class_start = i + 1 if i < n and pattern[i] == "]" else i  # a leading ] is literal
            after_quantifier = False
            continue
        if c == "(":
            if pattern.startswith("(?", i) and not pattern.startswith("(?:", i):
                raise ValueError("only (...) and (?:...) groups are allowed: no lookaround, named, atomic, comment "
                                 "or flag groups")  # fmt: skip
            i, after_quantifier = i + 1, False
            continue
        if c == "{":
            bound = _BOUND.match(pattern, i)
            if not bound:
                raise ValueError("'{' must start a bound {m}, {m,} or {m,n}; write \\{ for the character")
            low, high = int(bound[1]), int(bound[3]) if bound[3] else None
            if low > MAX_BOUND or (high is not None and (high > MAX_BOUND or high < low)):
                raise ValueError(f"repetition bounds must be ordered and at most {MAX_BOUND}")
            i, c = bound.end(), "}"
        elif c in "*+?":
            i += 1
        else:
            i, after_quantifier = i + 1, False
            continue
        if after_quantifier and c != "?":  # `a++`, `a*+`, `a**`: possessive or stacked
            raise ValueError("stacked or possessive quantifiers are not allowed")
        after_quantifier = True
    if in_class:
        raise ValueError("a [ is not closed")


def _structural(pattern: str) -> None:
    """Python's parse of the pattern holds nothing outside the regular-language subset."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # `[[:alpha:]]` is a nested set to Python
            tree = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError) as error:
        raise ValueError(f"it does not parse: {error}") from None
    stack = [tree]
    while stack:
        node = stack.pop()
        for op, argument in node.data if isinstance(node, sre_parse.SubPattern) else node:
            if op in _REFUSED:
                raise ValueError(f"{_REFUSED[op]} is not allowed")
            if op is sre.SUBPATTERN:
                stack.append(argument[3])
            elif op is sre.BRANCH:
                stack.extend(argument[1])
            elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
                stack.append(argument[2])


def regex_problem(pattern: str) -> str | None:
    """Why `pattern` is outside the subset filters take, or None."""
    try:
        _lexical(pattern)
        _structural(pattern)
    except ValueError as error:
        return str(error)
    return None
