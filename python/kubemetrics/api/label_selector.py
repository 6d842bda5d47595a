"""A label selector matcher for the demo core API (`/api/v1/nodes?labelSelector=`).

Same grammar as apimachinery's `labels.Parse` (`a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`,
`a`, `!a`, `a>1`, `a<1`; requirements ANDed). Error messages are shaped like apimachinery's but not
byte-identical; the metrics endpoints use the store's parser, which is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from kubemetrics.api.status import ApiStatusError, bad_request

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SPECIAL = "!=(),<>"


@dataclass(frozen=True, slots=True)
class LabelRequirement:
    key: str
    operator: str  # exists, !, =, !=, in, notin, gt, lt
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if self.operator in ("=", "in"):
            return present and labels[self.key] in self.values
        if self.operator in ("!=", "notin"):
            return not present or labels[self.key] not in self.values
        if not present:
            return False
        try:
            actual = int(labels[self.key])
        except ValueError:
            return False
        bound = int(self.values[0])
        return actual > bound if self.operator == "gt" else actual < bound


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A parsed selector: every requirement must hold."""

    requirements: tuple[LabelRequirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(requirement.matches(labels) for requirement in self.requirements)


def parse_label_selector(text: str) -> LabelSelector:
    """Raises ApiStatusError (400) for a selector Kubernetes would reject."""
    return _LabelParser(text).parse()


class _LabelParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _label_tokens(text)
        self.position = 0

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> str | None:
        token = self.peek()
        self.position += 1
        return token

    def parse(self) -> LabelSelector:
        requirements: list[LabelRequirement] = []
        while self.peek() is not None:
            requirements.append(self.requirement())
            separator = self.take()
            if separator not in (None, ","):
                raise _label_error(f"found '{separator}', expected: ',' or 'end of string'")
            if separator == "," and self.peek() is None:
                raise _label_error("found 'end of string', expected: identifier after ','")
        return LabelSelector(tuple(requirements))

    def requirement(self) -> LabelRequirement:
        negated = self.peek() == "!"
        if negated:
            self.take()
        key = self.take()
        if key is None or _is_symbol(key):
            raise _label_error(f"found '{key or 'end of string'}', expected: !, identifier, or 'end of string'")
        _check_key(key)
        operator = self.peek()
        if operator in (None, ","):
            return LabelRequirement(key, "!" if negated else "exists")
        if negated:
            raise _label_error(f"found '{operator}', expected: ',' or 'end of string'")
        self.take()
        if operator in ("in", "notin"):
            values = self.value_set()
        elif operator in ("=", "==", "!=", ">", "<"):
            values = (self.single_value(),)
        else:
            raise _label_error(f"found '{operator}', expected: in, notin, =, ==, !=, gt, lt")
        for value in values:
            _check_value(key, value)
        if operator in (">", "<") and not re.fullmatch(r"[-+]?\d+", values[0]):
            raise _label_error(f"for 'Gt', 'Lt' operators, the value must be an integer: {values[0]}")
        normalized = {"==": "=", ">": "gt", "<": "lt"}.get(operator, operator)
        return LabelRequirement(key, normalized, values)

    def single_value(self) -> str:
        value = self.peek()
        if value is None or value == ",":
            return ""
        if _is_symbol(value):
            raise _label_error(f"found '{value}', expected: identifier")
        self.take()
        return value

    def value_set(self) -> tuple[str, ...]:
        if self.take() != "(":
            raise _label_error("expected: '('")
        values: list[str] = []
        expect_value = True
        while (token := self.take()) != ")":
            if token is None:
                raise _label_error("found 'end of string', expected: ')'")
            if token == ",":
                if expect_value:
                    values.append("")
                expect_value = True
            elif _is_symbol(token) or not expect_value:
                raise _label_error(f"found '{token}', expected: ',', ')' or identifier")
            else:
                values.append(token)
                expect_value = False
        if expect_value:
            values.append("")
        return tuple(values)


def _label_tokens(text: str) -> list[str]:
    tokens: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char.isspace():
            index += 1
        elif char in _SPECIAL:
            pair = text[index : index + 2]
            if pair in ("!=", "=="):
                tokens.append(pair)
                index += 2
            else:
                tokens.append(char)
                index += 1
        else:
            end = index
            while end < len(text) and not text[end].isspace() and text[end] not in _SPECIAL:
                end += 1
            tokens.append(text[index:end])
            index = end
    return tokens


def _is_symbol(token: str) -> bool:
    return token in ("!", "!=", "=", "==", "(", ")", ",", ">", "<")


def _check_key(key: str) -> None:
    prefix, slash, name = key.rpartition("/")
    valid = len(name) <= 63 and bool(_QUALIFIED_NAME.match(name))
    if slash:
        valid = valid and 0 < len(prefix) <= 253 and bool(_DNS_SUBDOMAIN.match(prefix))
    if not valid:
        raise _label_error(
            f'key: Invalid value: "{key}": name part must consist of alphanumeric characters, '
            "'-', '_' or '.', and must start and end with an alphanumeric character"
        )


def _check_value(key: str, value: str) -> None:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise _label_error(
            f'values[0][{key}]: Invalid value: "{value}": a valid label must be an empty string or consist of '
            "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        )


def _label_error(detail: str) -> ApiStatusError:
    return bad_request(f"unable to parse requirement: {detail}")
