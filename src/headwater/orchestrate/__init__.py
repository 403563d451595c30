"""The Dagster code location: every pipeline's assets, partitions, schedules, sensors, retry policies,
asset checks and the run-failure alert sensor, built from the core functions. The core never imports
Dagster; this package only adapts it.

    dagster dev -m headwater.orchestrate.definitions       # what `headwater ui` runs
"""

from headwater.orchestrate.build import build_definitions

__all__ = ["build_definitions"]
