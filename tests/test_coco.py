"""segconvert.coco: ids kept where they are unique, the next free integers elsewhere."""

from __future__ import annotations

from segconvert.coco import IdAssigner, assign_ids, missing_ids


def test_ids_fed_one_at_a_time_get_what_a_whole_list_gets():
    values = [7, None, 7, 2, "x", None, 3, 8, 2]
    assigner = IdAssigner()
    for value in values:
        assigner.add(value)
    assert assigner.assigned() == missing_ids(values) == {1: 9, 2: 10, 5: 11, 8: 12}


def test_every_record_ends_with_a_unique_id_and_the_unique_ones_keep_theirs():
    records = [{"id": 1}, {"id": None}, {"id": 1}, {"id": 2}]
    assign_ids(records)
    assert [r["id"] for r in records] == [1, 3, 4, 2]
