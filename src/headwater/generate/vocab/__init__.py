"""Vocabularies for synthetic strings, loaded once per process as Arrow arrays and sampled with NumPy.

Names, countries and lorem words come from Faker's en_US locale data (read as data, never one
Faker call per row); cities and e-mail domains ship with headwater.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

import numpy as np
import pyarrow as pa


def _bundled(name: str) -> list[str]:
    text = files("headwater.generate.vocab").joinpath(name).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


@cache
def vocabulary(kind: str) -> tuple[pa.Array, np.ndarray | None]:
    """The values of a vocabulary and, where the source has them, their relative frequencies."""
    if kind == "first_name":
        from faker.providers.person.en_US import Provider as Person

        merged: dict[str, float] = {}
        for table in (Person.first_names_female, Person.first_names_male):
            for name, weight in table.items():
                merged[name] = merged.get(name, 0.0) + float(weight)
        return _with_weights(merged)
    if kind == "last_name":
        from faker.providers.person.en_US import Provider as Person

        return _with_weights({k: float(v) for k, v in Person.last_names.items()})
    if kind == "country":
        from faker.providers.address.en_US import Provider as Address

        return pa.array(sorted(set(Address.countries)), pa.string()), None
    if kind == "word":
        from faker.providers.lorem.en_US import Provider as Lorem

        return pa.array(sorted(set(Lorem.word_list)), pa.string()), None
    if kind == "company_suffix":
        return pa.array(["Inc", "LLC", "Ltd", "Group", "and Sons", "Holdings", "Labs", "Partners"]), None
    if kind == "city":
        return pa.array(_bundled("cities.txt"), pa.string()), None
    if kind == "domain":
        return pa.array(_bundled("domains.txt"), pa.string()), None
    raise KeyError(kind)


def _with_weights(table: dict[str, float]) -> tuple[pa.Array, np.ndarray]:
    names = sorted(table)
    weights = np.array([table[n] for n in names], dtype=np.float64)
    return pa.array(names, pa.string()), weights / weights.sum()
