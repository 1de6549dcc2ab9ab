"""X-Filter semantics on list items, including every shape the two clients send (reference §2)."""

import json

import pytest

from gpucloud.api.filters import Filterable, FilterError, parse

FIELDS = Filterable.of("id", "label", "class", "vcpus", "tags", "group", "entity.id", "entity.type", "action",
                       "created", "details.*")
ITEMS = [
    {"id": 1, "label": "RTX x1", "class": "gpu", "vcpus": 8, "tags": ["prod", "ml"], "group": "a",
     "created": "2026-01-01T00:00:00", "entity": {"id": 10, "type": "linode"}, "action": "linode_boot"},
    {"id": 2, "label": "Linode 2GB", "class": "standard", "vcpus": 1, "tags": [], "group": "b",
     "created": "2026-01-03T00:00:00", "entity": {"id": 11, "type": "linode"}, "action": "linode_create"},
    {"id": 3, "label": "rtx x4", "class": "gpu", "vcpus": 24, "tags": ["prod"], "group": "prod",
     "created": "2026-01-02T00:00:00", "entity": {"id": 10, "type": "linode"}, "action": "linode_create"},
    {"id": 4, "label": "Linode 32GB", "class": "highmem", "vcpus": 12, "tags": ["ml"], "group": "prod",
     "created": "2026-01-04T00:00:00", "entity": None, "action": "account_update"},
]


def ids(header, items=ITEMS, **kw):
    return [i["id"] for i in parse(json.dumps(header), FIELDS).apply(items, **kw)]


@pytest.mark.parametrize(("header", "expected"), [
    ({"class": "gpu"}, [1, 3]),
    ({"+and": [{"vcpus": {"+gte": 8}}, {"label": {"+contains": "RTX"}}]}, [1, 3]),
    ({"+or": [{"label": "RTX x1"}, {"label": "Linode 2GB"}]}, [1, 2]),
    ({"+or": [{"+or": [{"class": "standard"}, {"class": "highmem"}]},
              {"+and": [{"vcpus": {"+gte": 12}}, {"vcpus": {"+lte": 20}}]}]}, [2, 4]),
    ({"vcpus": {"+gt": 8, "+lt": 24}}, [4]),
    ({"class": {"+neq": "gpu"}}, [2, 4]),
    ({"tags": "prod"}, [1, 3]),  # list-valued field: contains
    ({"entity.id": 10, "entity.type": "linode"}, [1, 3]),
    ({"entity.id": "10"}, [1, 3]),  # numbers may come as strings
    ({"created": {"+gt": "2026-01-02T00:00:00"}}, [2, 4]),
    ({"class": "gpu", "vcpus": 8}, [1]),  # several keys are ANDed
    ({"label": {"+contains": "linode"}}, [2, 4]),  # case-insensitive
])
def test_filters_select_what_the_client_asked_for(header, expected):
    assert ids(header) == expected


def test_ordering_limit_and_order_by_inside_and():
    assert ids({"+order_by": "vcpus", "+order": "desc"}) == [3, 4, 1, 2]
    assert ids({"+and": [{"class": "gpu"}, {"+order_by": "label"}]}) == [1, 3]  # linode_api4's shape
    assert ids({"+limit": 2, "+order_by": "created"}) == [1, 3]
    # the EventPoller's filter: oldest first among one entity's events of one action
    assert ids({"+order": "asc", "+order_by": "created", "entity.id": 10, "entity.type": "linode",
                "action": "linode_create"}) == [3]
    # +order alone flips the collection's default direction
    assert ids({"+order": "asc"}, items=list(reversed(ITEMS)), default_descending=True) == [1, 2, 3, 4]


def test_top_level_equalities_are_exposed_for_database_narrowing():
    query = parse(json.dumps({"entity.id": 10, "+or": [{"action": "a"}, {"action": "b"}],
                              "+and": [{"entity.type": "linode"}], "vcpus": {"+gt": 1}}), FIELDS)
    assert query.equalities == {"entity.id": 10, "entity.type": "linode"}


@pytest.mark.parametrize(("header", "reason"), [
    ("{not json", "X-Filter is not valid JSON"),
    ("[1, 2]", "X-Filter must be a JSON object"),
    ('{"ipv6": "x"}', "Cannot filter on ipv6"),
    ('{"+order_by": "ipv6"}', "Cannot order by ipv6"),
    ('{"+order": "up"}', "+order must be asc or desc"),
    ('{"+limit": 0}', "+limit must be a positive integer"),
    ('{"+xor": []}', "Unknown operator +xor"),
    ('{"vcpus": {"+between": 1}}', "Unknown operator +between for vcpus"),
    ('{"vcpus": {"+gt": [1]}}', "+gt on vcpus needs a number"),
    ('{"label": {"+contains": 5}}', "+contains on label needs a string"),
    ('{"+and": {"label": "x"}}', "+and must be a non-empty list of filter objects"),
    ('{"+or": [{"+order_by": "label"}]}', "+order_by may not appear inside +or"),
    ('{"label": {}}', "Invalid filter value for label"),
    ('{"label": ["a"]}', "Invalid filter value for label"),
    ("[" * 5000 + "]" * 5000, "X-Filter is not valid JSON"),
    ('{"+and": [' * 40 + '{"id": 1}' + "]}" * 40, "X-Filter is nested too deeply"),
])
def test_bad_filters_are_refused_with_a_reason(header, reason):
    with pytest.raises(FilterError) as err:
        parse(header, FIELDS)
    assert (err.value.reason, err.value.field) == (reason, "X-Filter")


def test_subtree_patterns_and_empty_header():
    assert parse('{"details.anything": 1}', FIELDS).apply(ITEMS) == []
    assert len(parse(None, FIELDS).apply(ITEMS)) == len(parse("  ", FIELDS).apply(ITEMS)) == 4
