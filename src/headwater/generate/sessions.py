"""The built-in ``sessions`` dataset: recording-session folders as a lab's acquisition rig leaves them.

Each session is a folder named by its start time (``20210301_161221``) holding one binary file per
channel group (little-endian float32 samples, channels interleaved) and ``metadata.txt`` with
``key: value`` lines: numeric fields (fatigue level, duration, sample rate, channels) and text
fields (hardware model, operator, site).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from headwater import __version__
from headwater.errors import UsageError
from headwater.manifest import MANIFEST_NAME, FileRecord, Manifest
from headwater.progress import Progress, no_progress

METADATA_FILE = "metadata.txt"
SESSION_NAME_FORMAT = "%Y%m%d_%H%M%S"
HARDWARE = ("X200", "X200", "X300", "NeuroAmp-8", "BioRig Mk2")
OPERATORS = ("a.khan", "b.lopez", "c.novak", "d.mensah", "e.sato")
SITES = ("lab-1", "lab-2", "field-north")
SAMPLE_RATES = (250, 500, 1000)
BYTES_PER_SAMPLE = 4  # float32


@dataclass(frozen=True)
class SessionOptions:
    count: int = 10
    session_bytes: int = 600_000_000
    files_per_session: int = 4
    channels_per_file: int = 8
    start: dt.datetime = dt.datetime(2021, 2, 1, 8, 0, 0)
    sessions_per_day: int = 10
    seed: int = 42
    overwrite: bool = False


def session_name(when: dt.datetime) -> str:
    return when.strftime(SESSION_NAME_FORMAT)


def _metadata(
    rng: np.random.Generator, name: str, sample_rate: int, channels: int, samples: int, files: int
) -> str:
    fields = {
        "session": name,
        "subject_id": f"S{rng.integers(1, 60):03d}",
        "fatigue_level": int(rng.integers(1, 6)),
        "duration_s": round(samples / sample_rate, 3),
        "sample_rate_hz": sample_rate,
        "channels": channels,
        "files": files,
        "hardware_model": HARDWARE[int(rng.integers(0, len(HARDWARE)))],
        "operator": OPERATORS[int(rng.integers(0, len(OPERATORS)))],
        "site": SITES[int(rng.integers(0, len(SITES)))],
        "firmware": f"{rng.integers(1, 4)}.{rng.integers(0, 10)}.{rng.integers(0, 20)}",
        "room_temperature_c": round(float(rng.normal(21.5, 1.2)), 1),
    }
    return "".join(f"{k}: {v}\n" for k, v in fields.items())


def _signal(rng: np.random.Generator, samples: int, channels: int, sample_rate: int) -> np.ndarray:
    """Interleaved float32 samples: a per-channel sine plus noise and offset."""
    t = (np.arange(samples, dtype=np.float32) / np.float32(sample_rate))[:, None]
    freq = rng.uniform(1, 40, channels).astype(np.float32)
    amp = rng.uniform(5, 50, channels).astype(np.float32)
    offset = rng.normal(0, 10, channels).astype(np.float32)
    noise = rng.standard_normal((samples, channels), dtype=np.float32)
    data = np.sin(np.float32(2 * np.pi) * freq * t) * amp + offset + noise * np.float32(3)
    return np.ascontiguousarray(data, dtype="<f4")


def generate_sessions(out: Path, options: SessionOptions, progress: Progress = no_progress) -> Manifest:
    """Write ``options.count`` session folders into ``out`` and a manifest of every file."""
    if options.count <= 0 or options.session_bytes <= 0 or options.files_per_session <= 0:
        raise UsageError("sessions need a positive count, size and number of files")
    if (out / MANIFEST_NAME).exists() and not options.overwrite:
        raise UsageError(
            f"{out} already holds generated data ({MANIFEST_NAME}); choose another --out or pass --overwrite"
        )
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    records: list[FileRecord] = []
    total = options.count * options.session_bytes
    per_file = options.session_bytes // options.files_per_session
    for i in range(options.count):
        rng = np.random.default_rng([options.seed, i])
        day, slot = divmod(i, options.sessions_per_day)
        minutes = slot * (600 // max(options.sessions_per_day, 1)) + int(rng.integers(0, 30))
        when = options.start + dt.timedelta(days=day, minutes=minutes, seconds=int(rng.integers(0, 60)))
        name = session_name(when)
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        sample_rate = SAMPLE_RATES[int(rng.integers(0, len(SAMPLE_RATES)))]
        channels = options.channels_per_file
        samples = max(1, per_file // (BYTES_PER_SAMPLE * channels))
        for f in range(options.files_per_session):
            data = _signal(rng, samples, channels, sample_rate).tobytes()
            rel = f"{name}/channels_{f:02d}.bin"
            (out / rel).write_bytes(data)
            records.append(FileRecord(rel, len(data), hashlib.sha256(data).hexdigest(), samples, "sessions"))
            progress("sessions bytes", len(data), total)
        text = _metadata(
            rng, name, sample_rate, channels * options.files_per_session, samples, options.files_per_session
        )
        meta = text.encode()
        (folder / METADATA_FILE).write_bytes(meta)
        records.append(
            FileRecord(
                f"{name}/{METADATA_FILE}", len(meta), hashlib.sha256(meta).hexdigest(), None, "metadata"
            )
        )
    manifest = Manifest(
        files=records,
        meta={
            "generator": f"headwater {__version__}",
            "schema": "sessions",
            "seed": options.seed,
            "sessions": options.count,
            "seconds": round(time.perf_counter() - started, 3),
        },
    )
    manifest.write(out / MANIFEST_NAME)
    return manifest
