"""Recording sessions in Dagster: preprocessing runs exactly once per new session.

* ``sessions`` is a dynamic partitions definition: one partition per session id.
* ``sessions_uploaded_sensor`` asks the catalog for sessions in status ``uploaded`` (the only ones that
  need work), registers them as partitions and requests one run each; the run key is the session id, so
  a session is never requested twice, and the catalog's atomic claim makes a duplicate run a no-op. A
  claim abandoned by a dead worker (older than ``sessions.claim_timeout``) is requested again under a
  new key, ``session:<id>:reclaim:<claimed_at>``.
* ``session_features`` calls the configured preprocessor, claiming the session under the run's id. Its
  retries re-claim the session the failed attempt marked ``failed``, or the claim an attempt that died
  (killed, out of memory) left live under the same run id; when the retries are exhausted the run fails
  and ``alert_on_run_failure`` sends one alert (the core is told not to alert, so there is exactly one
  per failure).
"""

import dagster as dg

from headwater.config import Settings
from headwater.orchestrate.common import retry_policy
from headwater.sessions.preprocess import pending_run_keys, preprocess_session

PARTITIONS = "sessions"
sessions_partitions = dg.DynamicPartitionsDefinition(name=PARTITIONS)
GROUP = "sessions"


def build_sessions(settings: Settings) -> dict[str, list[object]]:
    @dg.asset(
        name="session_features",
        group_name=GROUP,
        partitions_def=sessions_partitions,
        retry_policy=retry_policy(settings),
        kinds={"numpy", "parquet"},
        description="Per-channel summary statistics of one recording session (the configured preprocessor), "
        "written to processed/sessions/YYYY/MM/DD/<session>/ and recorded in the catalog.",
    )
    def session_features(context: dg.AssetExecutionContext) -> dg.MaterializeResult:  # type: ignore[type-arg]
        retrying = context.retry_number > 0
        result = preprocess_session(
            settings,
            context.partition_key,
            force=retrying,
            alert=False,
            owner=f"dagster-run:{context.run.run_id}",  # a retry takes back a claim its dead attempt left
        )
        context.log.info(f"session {result.session_id}: {result.status} ({result.message or 'preprocessed'})")
        return dg.MaterializeResult(
            metadata={
                "status": str(result.status.value if result.status else None),
                "ran": result.ran,
                "files": len(result.files),
                "seconds": round(result.seconds, 2),
                "raw_bytes": result.raw_bytes,
                "outputs": dg.MetadataValue.json([f.uri for f in result.files]),
            }
        )

    job = dg.define_asset_job(
        "sessions_job",
        selection=dg.AssetSelection.groups(GROUP),
        description="Preprocess one recording session.",
    )

    @dg.sensor(
        name="sessions_uploaded_sensor",
        job=job,
        minimum_interval_seconds=settings.orchestrate.sensor_interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Registers each newly uploaded session as a partition and requests its preprocessing once.",
    )
    def sessions_uploaded_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        pending = pending_run_keys(settings)
        known = set(context.instance.get_dynamic_partitions(PARTITIONS))
        new = [s for s, _ in pending if s not in known]
        return dg.SensorResult(
            run_requests=[dg.RunRequest(partition_key=s, run_key=key) for s, key in pending],
            dynamic_partitions_requests=[sessions_partitions.build_add_request(new)] if new else [],
        )

    return {"assets": [session_features], "jobs": [job], "sensors": [sessions_uploaded_sensor]}
