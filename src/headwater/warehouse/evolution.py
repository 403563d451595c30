"""Schema evolution: compare a batch's columns with the target table and decide, under a policy,
what to add, widen, ignore or refuse. Pure: the plan is applied by the load, in its transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from headwater.errors import SchemaChangeError
from headwater.warehouse.base import ChangeKind, SchemaChange, SchemaChangePolicy
from headwater.warehouse.types import SqlType, TypeName, widen_type


@dataclass
class EvolutionPlan:
    """``load_columns``: the source columns to load, with the type the table will have for each."""

    load_columns: dict[str, SqlType] = field(default_factory=dict)
    changes: list[SchemaChange] = field(default_factory=list)

    @property
    def alters(self) -> list[SchemaChange]:
        return [c for c in self.changes if c.kind in (ChangeKind.ADD_COLUMN, ChangeKind.WIDEN_COLUMN)]


def plan_evolution(
    table: str,
    target: dict[str, SqlType],
    source: dict[str, SqlType],
    policy: SchemaChangePolicy,
    managed: Sequence[str] = (),
) -> EvolutionPlan:
    """What loading ``source`` into ``target`` changes. Breaking changes always raise
    SchemaChangeError; ``fail`` raises on any change, ``freeze`` on anything but ignoring extra
    source columns and NULL-filling missing ones. ``managed`` columns (surrogate keys, SCD2
    validity) belong to the warehouse and are never expected in the source."""
    plan = EvolutionPlan()
    lowered = {name.lower(): name for name in target}
    for name, incoming in source.items():
        existing_name = lowered.get(name.lower())
        if existing_name is not None and existing_name != name:
            raise SchemaChangeError(
                f"{table}.{name}: differs from existing column {existing_name} only in case; rename the source column"
            )
        if name not in target:
            if policy is SchemaChangePolicy.FREEZE:
                plan.changes.append(SchemaChange(table, ChangeKind.IGNORED_COLUMN, name, None, str(incoming)))
                continue
            _refuse_under_fail(policy, table, name, f"new column of type {incoming}")
            added = SqlType(TypeName.VARCHAR) if incoming.name is TypeName.NULL else incoming
            plan.changes.append(SchemaChange(table, ChangeKind.ADD_COLUMN, name, None, str(added)))
            plan.load_columns[name] = added
            continue
        current = target[name]
        wanted = widen_type(current, incoming)
        if wanted is None:
            raise SchemaChangeError(
                f"{table}.{name}: cannot load {incoming} into a {current} column (breaking change); "
                "cast the source or load into a new table"
            )
        if wanted != current:
            if policy is not SchemaChangePolicy.EVOLVE:
                raise SchemaChangeError(
                    f"{table}.{name}: needs widening {current} -> {wanted} but --on-schema-change is "
                    f"{policy.value}; use evolve to allow it"
                )
            plan.changes.append(SchemaChange(table, ChangeKind.WIDEN_COLUMN, name, str(current), str(wanted)))
        plan.load_columns[name] = wanted
    for name, current in target.items():
        if name not in source and name not in managed:
            _refuse_under_fail(policy, table, name, "column missing from the source")
            plan.changes.append(SchemaChange(table, ChangeKind.MISSING_IN_SOURCE, name, str(current), None))
    return plan


def _refuse_under_fail(policy: SchemaChangePolicy, table: str, column: str, what: str) -> None:
    if policy is SchemaChangePolicy.FAIL:
        raise SchemaChangeError(
            f"{table}.{column}: {what} but --on-schema-change is fail; use evolve or freeze to allow it"
        )


def check_primary_key(table: str, existing: tuple[str, ...], requested: tuple[str, ...]) -> tuple[str, ...]:
    """The key to merge on: the table's own, which a request may repeat but not change."""
    if requested and existing and tuple(requested) != tuple(existing):
        raise SchemaChangeError(
            f"{table}.{','.join(requested)}: primary key differs from the table's ({','.join(existing)}); "
            "changing a primary key is a breaking change, load into a new table"
        )
    return existing or requested
