"""Upload to the write-once raw zone (local folder and S3), quarantine of bad folders, resume, watch."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.sessions.conftest import make_project, make_sessions, s3_storage

from headwater.config import Settings
from headwater.manifest import MANIFEST_NAME
from headwater.sessions import open_catalog, upload_sessions, watch_sessions
from headwater.sessions.model import FileZone, SessionStatus
from headwater.sessions.stores import prefix_store
from headwater.sessions.upload import UploadOutcome, is_complete
from headwater.storage import verify_batch


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_upload_to_a_local_raw_zone_catalogs_verified_files(lab: Path, settings: Settings) -> None:
    report = upload_sessions(settings, lab)
    assert report.ok
    assert [s.outcome for s in report.sessions] == [UploadOutcome.UPLOADED] * 3
    catalog = open_catalog(settings)
    for session in sorted(p for p in lab.iterdir() if p.is_dir()):
        record = catalog.get(session.name)
        assert record is not None
        assert record.status is SessionStatus.UPLOADED
        raw = Path(settings.storage_root) / record.raw_prefix
        assert record.raw_prefix.startswith("raw/sessions/2021/02/01/")
        assert {f.name: f.sha256 for f in record.files_in(FileZone.RAW)} == {
            p.name: sha(p) for p in session.iterdir()
        }
        for path in raw.iterdir():
            if path.name != MANIFEST_NAME:
                assert sha(path) == sha(session / path.name)
                assert not path.stat().st_mode & 0o222  # write-once: read-only
        assert verify_batch(prefix_store(settings, record.raw_prefix)).ok
    again = upload_sessions(settings, lab)
    assert [s.outcome for s in again.sessions] == [UploadOutcome.ALREADY] * 3
    assert again.sent_bytes == 0


def test_one_session_folder_can_be_given_directly(lab: Path, settings: Settings) -> None:
    one = sorted(p for p in lab.iterdir() if p.is_dir())[0]
    report = upload_sessions(settings, one)
    assert [(s.session_id, s.outcome) for s in report.sessions] == [(one.name, UploadOutcome.UPLOADED)]


def test_bad_folders_are_each_quarantined_with_their_reason(
    tmp_path: Path, project_factory: Callable[..., Settings]
) -> None:
    settings = project_factory()
    lab = tmp_path / "lab"
    good, no_meta, empty, escape, bad_date, climb = make_sessions(lab, count=6)
    (climb / "..\\escape.bin").write_bytes(b"x")  # '..\escape.bin': a traversal on Windows-style keys
    (no_meta / "metadata.txt").unlink()
    (empty / "channels_03.bin").write_bytes(b"")
    os.symlink("/etc/hostname", escape / "host.bin")
    wrong = bad_date.with_name("20210229_161221")
    bad_date.rename(wrong)
    report = upload_sessions(settings, lab)
    assert not report.ok
    outcomes = {s.session_id: s for s in report.sessions}
    assert outcomes[good.name].outcome is UploadOutcome.UPLOADED
    expected = {
        no_meta.name: f"{no_meta.name}/metadata.txt: missing metadata file",
        empty.name: f"{empty.name}/channels_03.bin: empty file",
        escape.name: f"{escape.name}/host.bin: symlink to /etc/hostname points outside the session folder",
        wrong.name: "20210229_161221: folder name is not a real date and time (day is out of range for month)",
        climb.name: f"{climb.name}/'..\\\\escape.bin': file name with a path separator, '..' or control characters",
    }
    quarantine = settings.resolve("quarantine/sessions")
    for name, message in expected.items():
        item = outcomes[name]
        assert item.outcome is UploadOutcome.QUARANTINED
        assert item.message == message
        assert item.moved_to == quarantine / name
        assert (quarantine / name / "REASON.txt").read_text().splitlines()[0] == message
        assert not (lab / name).exists()  # moved, never deleted
    assert sorted(p.name for p in (quarantine / empty.name).iterdir()) == sorted(
        ["REASON.json", "REASON.txt", "metadata.txt"] + [f"channels_{i:02d}.bin" for i in range(4)]
    )
    catalog = open_catalog(settings)
    assert [r.session_id for r in catalog.list_sessions()] == [good.name]
    assert not any((Path(settings.storage_root) / "raw/sessions").rglob(f"*{no_meta.name}*"))


def test_a_project_folder_given_as_the_source_keeps_its_own_folders(
    tmp_path: Path, project_factory: Callable[..., Settings]
) -> None:
    """``headwater sessions upload .`` in the project: the storage root (the raw zone itself), the catalog and
    the quarantine are never checked as sessions nor moved to quarantine; the session folders are uploaded."""
    settings = project_factory()
    project = settings.project_dir
    first, second = make_sessions(tmp_path / "lab", count=2)
    assert upload_sessions(settings, first).ok  # the storage root data/ now holds the raw zone
    second.rename(project / second.name)
    (project / "quarantine" / "sessions").mkdir(parents=True)
    report = upload_sessions(settings, project)
    assert report.ok, [s.message for s in report.sessions]
    assert {(s.session_id, s.outcome) for s in report.sessions} == {
        (second.name, UploadOutcome.UPLOADED),
        ("data", UploadOutcome.SKIPPED),
        ("quarantine", UploadOutcome.SKIPPED),
    }
    skipped = {s.session_id: s.message for s in report.of(UploadOutcome.SKIPPED)}
    assert skipped["data"] == "data: holds this project's storage root; left in place, not a session"
    assert Path(settings.storage_root).is_dir()
    assert not any((project / "quarantine" / "sessions").iterdir())
    catalog = open_catalog(settings)
    assert [r.session_id for r in catalog.list_sessions()] == [first.name, second.name]
    for record in catalog.list_sessions():
        assert verify_batch(prefix_store(settings, record.raw_prefix)).ok
    # above the project: the project folder is left alone, and so is a folder of session folders (lab/)
    above = upload_sessions(settings, project.parent)
    assert {(s.session_id, s.outcome) for s in above.sessions} == {
        (project.name, UploadOutcome.SKIPPED),
        ("lab", UploadOutcome.SKIPPED),
    }
    assert above.of(UploadOutcome.SKIPPED)[0].message == (
        f"lab: holds session folders; left in place, not quarantined (give {first.parent} itself as the source, "
        "or use --recursive)"
    )
    assert (project / "headwater.yaml").is_file()
    assert first.is_dir()


def test_a_changed_folder_after_upload_is_reported_and_the_raw_copy_kept(
    lab: Path, settings: Settings
) -> None:
    upload_sessions(settings, lab)
    session = sorted(p for p in lab.iterdir() if p.is_dir())[1]
    (session / "channels_00.bin").write_bytes(b"different")
    report = upload_sessions(settings, lab)
    item = next(s for s in report.sessions if s.session_id == session.name)
    assert item.outcome is UploadOutcome.FAILED
    assert item.message is not None
    assert item.message.startswith(f"{session.name}/channels_00.bin: has 9 bytes here, 100,000 uploaded")
    assert "write-once" in item.message
    record = open_catalog(settings).get(session.name)
    assert record is not None
    raw = Path(settings.storage_root) / record.raw_prefix / "channels_00.bin"
    assert raw.stat().st_size == 100_000


def test_a_session_half_uploaded_before_is_completed_without_resending(lab: Path, settings: Settings) -> None:
    """Files a killed run left verified in raw/ are kept and not sent again; the catalog row appears only now."""
    session = sorted(p for p in lab.iterdir() if p.is_dir())[0]
    record_prefix = f"raw/sessions/2021/02/01/{session.name}"
    raw = Path(settings.storage_root) / record_prefix
    raw.mkdir(parents=True)
    (raw / "channels_00.bin").write_bytes((session / "channels_00.bin").read_bytes())
    assert open_catalog(settings).get(session.name) is None
    report = upload_sessions(settings, session)
    item = report.sessions[0]
    assert item.outcome is UploadOutcome.UPLOADED
    assert item.sent_bytes == item.bytes - 100_000


def test_quiet_and_marker_completion(tmp_path: Path) -> None:
    folder = tmp_path / "20210301_161221"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"x")
    now = time.time()
    assert not is_complete(folder, "_COMPLETE", 60, now)
    assert is_complete(folder, "_COMPLETE", 60, now + 61)
    assert not is_complete(folder, "_COMPLETE", 0, now + 10_000)  # marker only
    (folder / "_COMPLETE").write_bytes(b"")
    assert is_complete(folder, "_COMPLETE", 0, now)


def test_watch_once_uploads_complete_sessions_and_leaves_the_rest(
    tmp_path: Path, project_factory: Callable[..., Settings]
) -> None:
    settings = project_factory(sessions={"quiet_seconds": 3600})
    lab = tmp_path / "rig"
    first, second = make_sessions(lab, count=2)
    (first / "_COMPLETE").write_bytes(b"")
    report = watch_sessions(settings, lab, once=True)
    assert {(s.session_id, s.outcome) for s in report.sessions} == {
        (first.name, UploadOutcome.UPLOADED),
        (second.name, UploadOutcome.WAITING),
    }
    record = open_catalog(settings).get(first.name)
    assert record is not None
    assert "_COMPLETE" in [
        f.name for f in record.files_in(FileZone.RAW)
    ]  # the marker travels with the raw files
    (second / "_COMPLETE").write_bytes(b"")
    stops = iter([False, False, True])
    passes: list[int] = []
    report = watch_sessions(
        settings,
        lab,
        interval=0.1,
        should_stop=lambda: next(stops, True),
        on_pass=lambda r: passes.append(len(r.sessions)),
    )
    assert {(s.session_id, s.outcome) for s in report.sessions} >= {(second.name, UploadOutcome.UPLOADED)}
    assert first.name not in {s.session_id for s in report.sessions if s.outcome is UploadOutcome.UPLOADED}


@pytest.mark.s3
def test_upload_to_s3_raw_zone_is_write_once_and_verified(tmp_path: Path, s3_env: dict[str, str]) -> None:
    settings = make_project(tmp_path / "p", storage=s3_storage(s3_env))
    lab = tmp_path / "lab"
    make_sessions(lab, count=2)
    report = upload_sessions(settings, lab)
    assert report.ok
    assert [s.outcome for s in report.sessions] == [UploadOutcome.UPLOADED] * 2
    catalog = open_catalog(settings)
    for record in catalog.list_sessions():
        assert record.files[0].uri.startswith(f"{s3_env['root']}/raw/sessions/2021/02/01/")
        store = prefix_store(settings, record.raw_prefix)
        assert verify_batch(store).ok
        for ref in record.files_in(FileZone.RAW):
            assert store.read_sha256(ref.name) == ref.sha256
    # the raw zone refuses other bytes under a catalogued key, even through the storage layer directly
    record = catalog.list_sessions()[0]
    store = prefix_store(settings, record.raw_prefix)
    other = tmp_path / "other.bin"
    other.write_bytes(b"not the original")
    from headwater.errors import WriteOnceError
    from headwater.progress import no_progress

    with pytest.raises(WriteOnceError):
        store.put_file("channels_00.bin", other, write_once=True, progress=no_progress, task="x")


def test_recursive_upload_finds_sessions_filed_in_sub_folders(
    tmp_path: Path, project_factory: Callable[..., Settings]
) -> None:
    settings = project_factory()
    lab = tmp_path / "lab"
    feb = make_sessions(lab / "2021-02", count=2, seed=1)
    mar, bad = make_sessions(lab / "by-rig" / "rig-a" / "2021-03", count=2, seed=2)
    bad.rename(bad.with_name("session-one"))  # holds metadata.txt: a session, checked and quarantined
    (lab / "notes").mkdir()
    (lab / "notes" / "todo.txt").write_text("calibrate rig-a\n")
    (lab / ".cache" / "20210301_000000").mkdir(parents=True)  # hidden: not looked into
    report = upload_sessions(settings, lab, recursive=True)
    outcomes = {s.session_id: s.outcome for s in report.sessions}
    assert outcomes == {
        feb[0].name: UploadOutcome.UPLOADED,
        feb[1].name: UploadOutcome.UPLOADED,
        mar.name: UploadOutcome.UPLOADED,
        "session-one": UploadOutcome.QUARANTINED,
    }
    catalogued = [r.session_id for r in open_catalog(settings).list_sessions()]
    assert catalogued == sorted(p.name for p in (*feb, mar))
    assert (lab / "notes" / "todo.txt").is_file()  # a folder without sessions is not touched
    again = upload_sessions(settings, lab, recursive=True)  # a re-run sends nothing
    assert {s.outcome for s in again.sessions} <= {UploadOutcome.ALREADY}
    # without --recursive, folders holding sessions at any depth are left in place, never quarantined
    (lab / "notes" / "todo.txt").unlink()
    (lab / "notes").rmdir()
    flat = upload_sessions(settings, lab)
    assert {(s.session_id, s.outcome) for s in flat.sessions} == {
        ("2021-02", UploadOutcome.SKIPPED),
        ("by-rig", UploadOutcome.SKIPPED),
    }
    assert all(s.message and s.message.endswith("or use --recursive)") for s in flat.sessions)
    assert mar.is_dir()
    # the project's own folders are never looked into, even when the project sits inside the lab
    inside = project_factory("lab/project")
    below = upload_sessions(inside, lab, recursive=True)
    assert all("project" not in str(s.folder) for s in below.sessions)
