"""Checks a profile suggests, as plain dicts in the ``quality.checks`` format, and YAML to paste or accept.

The suggestions describe the data as it is (no nulls -> ``not_null``; every value distinct -> ``unique``;
a handful of values -> ``accepted_values``; observed min/max -> ``range``; one value shape -> ``regex``;
text dates -> ``castable``): a starting point a person reviews before accepting it into the project file.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from headwater.errors import ConfigError

if TYPE_CHECKING:
    from headwater.quality.profiling import ColumnProfile, Profile

ACCEPTED_MAX = 20


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None).isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if hasattr(value, "as_tuple"):
        return float(value)
    return value


def shape_regex(shape: str) -> str:
    """A regex for a value shape: runs of ``9`` -> ``[0-9]{n}``, of ``a`` -> ``[A-Za-z]{n}``, rest literal."""
    out = []
    for m in re.finditer(r"9+|a+|[^9a]+", shape):
        run = m.group(0)
        if run[0] == "9":
            out.append("[0-9]" + (f"{{{len(run)}}}" if len(run) > 1 else ""))
        elif run[0] == "a":
            out.append("[A-Za-z]" + (f"{{{len(run)}}}" if len(run) > 1 else ""))
        else:
            out.append(re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", run))
    return "".join(out)


def _for_column(c: ColumnProfile, rows: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if rows and c.nulls == 0:
        out.append({"type": "not_null", "column": c.name})
    if c.unique and c.kind in ("numeric", "string"):
        out.append({"type": "unique", "columns": [c.name]})
        return out
    if c.kind == "string" and c.distinct_exact and 0 < c.distinct <= ACCEPTED_MAX and rows >= 5 * c.distinct:
        out.append(
            {"type": "accepted_values", "column": c.name, "values": sorted(_plain(v) for v, _ in c.top)}
        )
        return out
    if c.kind == "numeric" and c.min is not None and c.max is not None and c.min != c.max:
        out.append({"type": "range", "column": c.name, "min": _plain(c.min), "max": _plain(c.max)})
    if c.kind == "temporal" and c.min is not None and c.max is not None:
        out.append(
            {
                "type": "range",
                "column": c.name,
                "min": _plain(c.min),
                "max": _plain(c.max),
                "severity": "warn",
            }
        )
    if c.kind == "string" and c.patterns and c.count:
        shape, n = c.patterns[0]
        from headwater.quality.profiling import _looks_temporal

        if _looks_temporal(shape):
            out.append(
                {"type": "castable", "column": c.name, "to": "date" if len(shape) == 10 else "timestamp"}
            )
        elif n == c.count and len(shape) <= 40 and "9" in shape:
            out.append({"type": "regex", "column": c.name, "pattern": shape_regex(shape), "severity": "warn"})
    return out


def suggest_checks(profile: Profile) -> list[dict[str, Any]]:
    """The checks ``profile`` suggests for its table."""
    out: list[dict[str, Any]] = [{"type": "row_count", "min": 1}] if profile.rows else []
    if len(profile.key) > 1:
        out.append({"type": "unique", "columns": list(profile.key)})
    for c in profile.columns:
        out += _for_column(c, profile.rows)
    return out


def suggestions_yaml(table: str, checks: list[dict[str, Any]]) -> str:
    """YAML ready to paste into ``headwater.yaml`` (the ``quality.checks.<table>`` block)."""
    body = yaml.safe_dump(
        {"quality": {"checks": {table: checks}}}, sort_keys=False, default_flow_style=None, width=110
    )
    return "# suggested by headwater profile; review before relying on them\n" + body


def accept_suggestions(project_file: Path, table: str, checks: list[dict[str, Any]]) -> str:
    """Write ``checks`` into ``project_file`` under ``quality.checks.<table>``, keeping every other line
    (and comment) as it is: appended as a new ``quality:`` section, or as a new table inside an existing
    ``quality.checks`` mapping. Refuses when the table already has checks. Returns what was written."""
    text = project_file.read_text(encoding="utf-8") if project_file.exists() else ""
    data = yaml.safe_load(text) if text.strip() else {}
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{project_file}: expected a mapping at the top level")
    quality = (data or {}).get("quality")
    if isinstance(quality, dict) and table in (quality.get("checks") or {}):
        raise ConfigError(
            f"{project_file}: quality.checks.{table} already exists; merge the suggestions by hand (--suggest-checks prints them)"
        )
    block_table = [f"    {table}:", *[f"      {item}" for item in _flow_items(checks)]]
    if quality is None:
        addition = (
            "\n# data quality checks (suggested by headwater profile; review them)\nquality:\n  checks:\n"
            + "\n".join(block_table)
            + "\n"
        )
        new_text = text.rstrip("\n") + "\n" + addition
    else:
        new_text = _insert_into_quality(text, block_table, isinstance(quality, dict) and "checks" in quality)
    check = yaml.safe_load(new_text)
    if not isinstance(check, dict) or table not in ((check.get("quality") or {}).get("checks") or {}):
        raise ConfigError(
            f"{project_file}: could not place quality.checks.{table} safely; paste the YAML by hand"
        )
    project_file.write_text(new_text, encoding="utf-8")
    return new_text


def _flow_items(checks: list[dict[str, Any]]) -> list[str]:
    return [
        "- " + yaml.safe_dump(c, default_flow_style=True, sort_keys=False, width=1000).strip() for c in checks
    ]


def _insert_into_quality(text: str, block_table: list[str], has_checks: bool) -> str:
    """Insert after the ``checks:`` line of the top-level ``quality:`` section (or add ``checks:``)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"^quality\s*:", line))
    if re.match(r"^quality\s*:\s*\S", lines[start]) and not lines[start].split(":", 1)[1].strip().startswith(
        "#"
    ):
        raise ConfigError("quality: is written inline; paste the suggested checks by hand")
    if has_checks:
        at = next(
            (i for i in range(start + 1, len(lines)) if re.match(r"^\s+checks\s*:\s*(#.*)?$", lines[i])),
            None,
        )
        if at is None:
            raise ConfigError("quality.checks is written inline; paste the suggested checks by hand")
        indent = len(lines[at]) - len(lines[at].lstrip())
        shifted = [" " * (indent - 2) + line for line in block_table] if indent != 2 else block_table
        lines[at + 1 : at + 1] = shifted
    else:
        lines[start + 1 : start + 1] = ["  checks:", *block_table]
    return "\n".join(lines) + "\n"
