"""`fieldSelector` parsing as apimachinery's `fields.ParseSelector` does it, and the metadata-only
field conversion that metrics-server's kinds get.

Labels are matched in Rust (`MetricsStore.render_*`); field selectors are handled here because
metrics-server supports only two fields and the store takes at most one name.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubemetrics.api.status import bad_request

NAME_FIELD = "metadata.name"
NAMESPACE_FIELD = "metadata.namespace"

# fields.splitTerm tries operators in this order at each position, so "a!=b" is never "a" "!" "=b".
_FIELD_OPERATORS = ("!=", "==", "=")


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    field: str
    operator: str  # "=" (also for "==") or "!="
    value: str


def parse_field_selector(text: str) -> tuple[FieldRequirement, ...]:
    """fields.ParseSelector: terms split on unescaped commas, sorted, each `field(=|==|!=)value` with
    `\\,` `\\=` `\\\\` escapes in the value. Raises ApiStatusError (400) with apimachinery's message."""
    terms = sorted(_split_terms(text))
    requirements: list[FieldRequirement] = []
    for term in terms:
        if not term:
            continue
        split = _split_term(term)
        if split is None:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        field, operator, raw_value = split
        value = _unescape_value(raw_value)
        requirements.append(FieldRequirement(field, "!=" if operator == "!=" else "=", value))
    return tuple(requirements)


def _split_terms(text: str) -> list[str]:
    if not text:
        return []
    terms: list[str] = []
    start = 0
    in_slash = False
    for index, char in enumerate(text):
        if in_slash:
            in_slash = False
        elif char == "\\":
            in_slash = True
        elif char == ",":
            terms.append(text[start:index])
            start = index + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    for index in range(len(term)):
        for operator in _FIELD_OPERATORS:
            if term.startswith(operator, index):
                return term[:index], operator, term[index + len(operator) :]
    return None


def _unescape_value(raw: str) -> str:
    if not any(char in raw for char in "\\,="):
        return raw
    out: list[str] = []
    in_slash = False
    for char in raw:
        if in_slash:
            if char not in "\\,=":
                raise bad_request(f"invalid field selector: invalid escape sequence: \\{char}")
            out.append(char)
            in_slash = False
        elif char == "\\":
            in_slash = True
        elif char in ",=":
            # Go formats the rune with %v, which prints its code point.
            raise bad_request(f"invalid field selector: unescaped character in value: {ord(char)}")
        else:
            out.append(char)
    if in_slash:
        raise bad_request("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


@dataclass(frozen=True, slots=True)
class MetadataFilter:
    """What a fieldSelector over `metadata.name` / `metadata.namespace` lets through.

    `name`/`namespace` are the only values an `=` term allows (handed to the store's render call);
    `!=` terms become exclusions the store applies while rendering.
    """

    name: str | None = None
    namespace: str | None = None
    excluded_names: frozenset[str] = frozenset()
    excluded_namespaces: frozenset[str] = frozenset()
    matches_nothing: bool = False

    @property
    def needs_post_filter(self) -> bool:
        return self.matches_nothing or bool(self.excluded_names or self.excluded_namespaces)

    @property
    def store_name(self) -> str | None:
        """The name to hand to the store: "" when the selector matches nothing, since no object
        has an empty name."""
        return "" if self.matches_nothing else self.name

    def keeps(self, name: str, namespace: str) -> bool:
        if self.matches_nothing or name in self.excluded_names or namespace in self.excluded_namespaces:
            return False
        return (self.name is None or name == self.name) and (self.namespace is None or namespace == self.namespace)


def metadata_filter(text: str, *, namespaced: bool, path_namespace: str | None = None) -> MetadataFilter:
    """Parse and convert a metrics fieldSelector.

    The metrics kinds register no field label conversion, so runtime.DefaultMetaV1FieldSelectorConversion
    applies: only metadata.name and metadata.namespace are known. Matching then uses
    generic.AddObjectMetaFieldsSet, where a node's field set has no namespace (it reads as "").
    `path_namespace` is the namespace from the URL, which further restricts pod lists.
    """
    requirements = parse_field_selector(text)
    for requirement in requirements:
        if requirement.field not in (NAME_FIELD, NAMESPACE_FIELD):
            raise bad_request(
                f'"{requirement.field}" is not a known field selector: only "{NAME_FIELD}", "{NAMESPACE_FIELD}"'
            )
    names = {r.value for r in requirements if r.field == NAME_FIELD and r.operator == "="}
    namespaces = {r.value for r in requirements if r.field == NAMESPACE_FIELD and r.operator == "="}
    excluded_names = frozenset(r.value for r in requirements if r.field == NAME_FIELD and r.operator == "!=")
    excluded_namespaces = frozenset(r.value for r in requirements if r.field == NAMESPACE_FIELD and r.operator == "!=")
    if path_namespace is not None:
        namespaces.add(path_namespace)

    matches_nothing = len(names) > 1 or len(namespaces) > 1 or "" in names
    if namespaced:
        matches_nothing = matches_nothing or "" in namespaces
    else:
        # A node's namespace field is empty: `=x` never matches, `!=` matches unless it excludes "".
        matches_nothing = matches_nothing or bool(namespaces - {""}) or "" in excluded_namespaces
        namespaces = set()
        excluded_namespaces = frozenset()
    return MetadataFilter(
        name=next(iter(names)) if len(names) == 1 else None,
        namespace=next(iter(namespaces)) if len(namespaces) == 1 else None,
        excluded_names=excluded_names,
        excluded_namespaces=excluded_namespaces,
        matches_nothing=matches_nothing,
    )
