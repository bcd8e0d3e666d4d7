"""Saving many transitioned rows at once (the batched carrier scans, `orders.shipping`).

A batch of scans moves many parcels and orders. Each one still goes through its own
django-fsm transition method and its service (`shipping._move`, `services._deliver_locked`),
which decide its events, notifications and follow-ups row by row, exactly as a single save
would; only the writes are collected here (`Writes`) and flushed together: one `UPDATE`
per model and set of fields, one bulk insert of the timeline events, in the order they
were recorded.

The optimistic concurrency of `ConcurrentTransitionMixin` is kept: each row is updated only
where its state fields still hold the values it was read (or last saved) with, and a row
that was not updated raises `ConcurrentTransition`, as `save()` would (the batch's
transaction rolls back). Sends no `pre_save`/`post_save` signals: none is connected to the
models written here (`Order`, `Shipment`); a model that needs them must keep `save()`.
"""

from __future__ import annotations

from django.db import transaction
from django_fsm import ConcurrentTransition, ConcurrentTransitionMixin, FSMFieldMixin

_STATE = "_ConcurrentTransitionMixin__initial_states"  # the mixin's record of the states as read


def _pg_type(field, connection) -> str:
    kind = field.get_internal_type()
    if kind == "BigAutoField":
        return "bigint"
    if kind == "AutoField":
        return "integer"
    return field.cast_db_type(connection)


def update_guarded(model, objs: list, fields: list[str]) -> None:
    """Write `fields` of each object (pre_save run, so `auto_now` fields are stamped as by
    `save()`), where the row's state fields are still what the object was read with.
    PostgreSQL: one `UPDATE … FROM unnest(arrays)`; elsewhere one `executemany`."""
    if not objs:
        return
    connection = transaction.get_connection()
    qn = connection.ops.quote_name
    meta = model._meta
    pk = meta.pk
    cols = [meta.get_field(f) for f in fields]
    guards = ([f for f in meta.concrete_fields if isinstance(f, FSMFieldMixin)]
              if issubclass(model, ConcurrentTransitionMixin) else [])
    rows = []
    for obj in objs:
        values = [c.get_db_prep_save(c.pre_save(obj, False), connection) for c in cols]
        initial = getattr(obj, _STATE, {})
        rows.append((obj.pk, *values, *[g.get_db_prep_save(initial.get(g.attname, g.value_from_object(obj)),
                                                           connection) for g in guards]))
    table = qn(meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            names = ["pk", *[f"c{i}" for i in range(len(cols))], *[f"g{i}" for i in range(len(guards))]]
            types = [_pg_type(pk, connection), *[_pg_type(c, connection) for c in cols],
                     *[_pg_type(g, connection) for g in guards]]
            sets = ", ".join(f"{qn(c.column)} = v.c{i}" for i, c in enumerate(cols))
            where = " AND ".join([f"t.{qn(pk.column)} = v.pk",
                                  *[f"t.{qn(g.column)} = v.g{i}" for i, g in enumerate(guards)]])
            cursor.execute(f"UPDATE {table} AS t SET {sets} FROM unnest({', '.join(f'%s::{t}[]' for t in types)}) "
                           f"AS v({', '.join(names)}) WHERE {where}", [list(column) for column in zip(*rows)])
        else:
            where = " AND ".join([f"{qn(pk.column)} = %s", *[f"{qn(g.column)} = %s" for g in guards]])
            cursor.executemany(f"UPDATE {table} SET {', '.join(f'{qn(c.column)} = %s' for c in cols)} WHERE {where}",
                               [(*r[1:1 + len(cols)], r[0], *r[1 + len(cols):]) for r in rows])
        updated = cursor.rowcount
    if updated != len(rows):
        raise ConcurrentTransition("Cannot save objects! The state of some has been changed since fetched "
                                   f"from the database ({updated} of {len(rows)} rows updated)")
    for obj in objs:
        if isinstance(obj, ConcurrentTransitionMixin):
            obj._update_initial_state()  # as save() does: the next save checks against the new state


def insert_rows(model, objs: list, *, skip_conflicts: bool = False, returning: list[str] = ()) -> list[tuple] | None:
    """Insert unsaved objects (their defaults already set, as `bulk_create` does) and return
    `returning` (attnames) of the rows inserted; `skip_conflicts`: a row a unique constraint
    already holds is skipped. PostgreSQL: one `INSERT … SELECT FROM unnest(arrays)`
    (`ON CONFLICT DO NOTHING`, `RETURNING`), the rows getting their ids in the objects' order.
    Elsewhere: None — the caller uses `bulk_create`."""
    connection = transaction.get_connection()
    if connection.vendor != "postgresql":
        return None
    if not objs:
        return []
    qn = connection.ops.quote_name
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    columns = [[f.get_db_prep_save(f.pre_save(obj, True), connection) for obj in objs] for f in fields]
    sql = (f"INSERT INTO {qn(model._meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
           f"SELECT * FROM unnest({', '.join(f'%s::{_pg_type(f, connection)}[]' for f in fields)})")
    if skip_conflicts:
        sql += " ON CONFLICT DO NOTHING"
    if returning:
        sql += f" RETURNING {', '.join(qn(model._meta.get_field(a).column) for a in returning)}"
    with connection.cursor() as cursor:
        cursor.execute(sql, columns)
        return cursor.fetchall() if returning else []


class Writes:
    """Rows to save and timeline events to insert, collected while a batch runs and written
    by `flush()`. Whoever reads those rows from the database (or saves them one by one)
    in between must `flush()` first."""

    def __init__(self):
        self._rows: dict[tuple[type, int], tuple[object, set[str]]] = {}
        self.events: list[dict] = []  # `orders.events.*_fields` rows, in the order they happened

    def save(self, obj, fields) -> None:
        """`obj.save(update_fields=fields)`, later (several calls for one row add up)."""
        key = (type(obj), obj.pk)
        held = self._rows.get(key)
        if held is not None and held[0] is not obj:  # another copy of the row: write the first one now
            self.flush()
            held = None
        self._rows[key] = (obj, (held[1] if held else set()) | set(fields))

    def event(self, fields: dict) -> None:
        self.events.append(fields)

    def __bool__(self) -> bool:
        return bool(self._rows or self.events)

    def flush(self) -> None:
        from orders import events

        groups: dict[tuple[type, tuple[str, ...]], list] = {}
        for (model, _pk), (obj, fields) in self._rows.items():
            groups.setdefault((model, tuple(sorted(fields))), []).append(obj)
        self._rows = {}
        for (model, fields), objs in groups.items():
            update_guarded(model, objs, list(fields))
        if self.events:
            pending, self.events = self.events, []
            from orders.models import OrderEvent

            if insert_rows(OrderEvent, [OrderEvent(**f) for f in pending]) is None:
                events.record_many(pending)
