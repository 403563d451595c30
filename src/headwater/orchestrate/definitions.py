"""The module Dagster loads (``-m headwater.orchestrate.definitions``). The project folder comes from
``HEADWATER_PROJECT`` (set by ``headwater ui``), else the current folder."""

from __future__ import annotations

import os
from pathlib import Path

from headwater.config import load_settings
from headwater.orchestrate.build import build_definitions

_project = os.environ.get("HEADWATER_PROJECT")
defs = build_definitions(load_settings(Path(_project) if _project else None))
