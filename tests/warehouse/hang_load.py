"""Run by the kill tests as a separate process: load batch ``b1`` and, at the last point inside the
load's transaction (all rows written, audit row written, not committed), signal and hang."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from headwater.warehouse import LoadRequest, open_warehouse
from tests.warehouse.test_kill import batch


def main() -> None:
    url, schema, marker = sys.argv[1], sys.argv[2], Path(sys.argv[3])

    def hang_in_transaction(task: str, advance: int, total: int | None = None) -> None:
        if task == "audit":
            marker.write_text("inside")
            time.sleep(600)

    wh = open_warehouse(url, schema=schema)
    wh.load(batch(500, 1500, "new"), LoadRequest("t", "b1", primary_key=("id",)), hang_in_transaction)


if __name__ == "__main__":
    main()
