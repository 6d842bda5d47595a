"""Field selector parsing (apimachinery `fields.ParseSelector` rules) and the demo core API's label
selector matcher, without a server."""

from __future__ import annotations

import pytest
from kubemetrics.api.field_selector import FieldRequirement, metadata_filter, parse_field_selector
from kubemetrics.api.label_selector import parse_label_selector
from kubemetrics.api.status import ApiStatusError


def test_field_terms_are_sorted_and_double_equals_is_equals() -> None:
    assert parse_field_selector("metadata.namespace==b,metadata.name=a") == (
        FieldRequirement("metadata.name", "=", "a"),
        FieldRequirement("metadata.namespace", "=", "b"),
    )


def test_field_values_unescape_commas_equals_and_backslashes() -> None:
    assert parse_field_selector(r"metadata.name=a\,b\=c\\d") == (FieldRequirement("metadata.name", "=", "a,b=c\\d"),)


def test_leftmost_operator_splits_a_term() -> None:
    assert parse_field_selector("metadata.name!=x") == (FieldRequirement("metadata.name", "!=", "x"),)
    assert parse_field_selector("metadata.name=!x") == (FieldRequirement("metadata.name", "=", "!x"),)


def test_empty_terms_are_skipped() -> None:
    assert parse_field_selector(",metadata.name=a,,") == (FieldRequirement("metadata.name", "=", "a"),)
    assert parse_field_selector("") == ()


def test_unknown_metrics_field_is_rejected_in_sorted_term_order() -> None:
    with pytest.raises(ApiStatusError) as rejected:
        metadata_filter("status.phase=Running,spec.nodeName=x,metadata.name=a", namespaced=True)

    assert rejected.value.code == 400
    assert rejected.value.message == (
        '"spec.nodeName" is not a known field selector: only "metadata.name", "metadata.namespace"'
    )


def test_metadata_filter_hands_equalities_to_the_store_and_keeps_exclusions() -> None:
    fields = metadata_filter("metadata.name=web-0,metadata.namespace!=kube-system", namespaced=True)

    assert (fields.name, fields.namespace, fields.matches_nothing) == ("web-0", None, False)
    assert fields.needs_post_filter
    assert fields.keeps("web-0", "default")
    assert not fields.keeps("web-0", "kube-system")
    assert not fields.keeps("web-1", "default")


def test_path_namespace_joins_the_field_selector() -> None:
    same = metadata_filter("metadata.namespace=default", namespaced=True, path_namespace="default")
    other = metadata_filter("metadata.namespace=default", namespaced=True, path_namespace="kube-system")

    assert (same.namespace, same.matches_nothing) == ("default", False)
    assert other.matches_nothing


def test_label_selector_operators() -> None:
    labels = {"app": "web", "tier": "front", "replicas": "3"}
    expectations = {
        "app=web": True,
        "app==web": True,
        "app!=web": False,
        "app!=db": True,
        "missing!=x": True,
        "app in (db, web)": True,
        "app notin (web)": False,
        "missing notin (web)": True,
        "tier": True,
        "!tier": False,
        "!missing": True,
        "replicas>2": True,
        "replicas<3": False,
        "missing>1": False,
        "app=web,tier=back": False,
        "app=web, tier=front": True,
        "": True,
    }
    for selector, expected in expectations.items():
        assert parse_label_selector(selector).matches(labels) is expected, selector


def test_label_selector_rejects_what_kubernetes_rejects() -> None:
    for selector in ("app in web", "app web", "=web", "app=web,", "-app=x", "app=-x-", "replicas>x", "!app=web"):
        with pytest.raises(ApiStatusError) as rejected:
            parse_label_selector(selector)
        assert rejected.value.code == 400, selector
        assert rejected.value.message.startswith("unable to parse requirement: "), selector
