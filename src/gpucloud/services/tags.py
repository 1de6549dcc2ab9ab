"""Tags (`/tags`): an account's tags are those it created and those on its instances. Creating
one may tag instances; deleting one removes it from every instance of the account."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from gpucloud.domain import validation
from gpucloud.errors import NotFound, ValidationErrors
from gpucloud.store import instances as instance_q
from gpucloud.store import tags as q
from gpucloud.store.db import Database
from gpucloud.store.tables import Instance, Tag


def list_tags(db: Database, account_id: int) -> list[str]:
    with db.read() as s:
        return sorted({t.label for t in q.created(s, account_id)} | q.on_instances(s, account_id))


def tagged_instances(db: Database, account_id: int, label: str) -> list[Instance]:
    """The instances carrying the tag; NotFound when the account has no such tag at all."""
    with db.read() as s:
        found = q.instances_tagged(s, account_id, label)
        if not found and q.created_one(s, account_id, label) is None:
            raise NotFound()
        return found


def create_tag(db: Database, account_id: int, label: str, instance_ids: list[int]) -> str:
    """Creates the tag (again is fine) and puts it on the given instances of the account."""
    if problem := validation.tag_problem(label):
        raise ValidationErrors([("label", problem)])
    for _attempt in range(2):  # a racing create of the same tag may win once: then it exists, as asked
        try:
            _create(db, account_id, label, instance_ids)
            return label
        except IntegrityError:
            continue
    raise RuntimeError(f"tag {label!r} could not be created")


def _create(db: Database, account_id: int, label: str, instance_ids: list[int]) -> None:
    with db.write() as s:
        targets = []
        for instance_id in dict.fromkeys(instance_ids):
            instance = instance_q.owned(s, account_id, instance_id, lock=True)
            if instance is None:
                raise ValidationErrors([("linodes", f"Linode {instance_id} was not found")])
            targets.append(instance)
        if q.created_one(s, account_id, label) is None:
            s.add(Tag(account_id=account_id, label=label))
            s.flush()
        for instance in targets:
            if label not in (instance.tags or []):
                instance.tags = [*(instance.tags or []), label]


def delete_tag(db: Database, account_id: int, label: str) -> None:
    with db.write() as s:
        row = q.created_one(s, account_id, label)
        tagged = q.instances_tagged(s, account_id, label, lock=True)
        if row is None and not tagged:
            raise NotFound()
        if row is not None:
            s.delete(row)
        for instance in tagged:
            instance.tags = [t for t in instance.tags if t != label]
