"""S3 through a real moto server over HTTP (and once over TLS with a test CA)."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import obstore
import pytest

from headwater.errors import StorageError, UsageError, WriteOnceError
from headwater.manifest import MANIFEST_NAME, Manifest
from headwater.storage import (
    Encryption,
    FileStatus,
    Location,
    Scheme,
    StoreOptions,
    VerifyMode,
    check_bucket,
    open_store,
    pull_batch,
    push_batch,
    run_janitor,
    verify_batch,
)
from headwater.storage.admin import make_s3_client
from headwater.storage.cloud import CloudStore
from headwater.storage.location import check_endpoint
from headwater.storage.retry import RetryPolicy
from tests.storage.conftest import MotoServer, s3_location, write_files

pytestmark = pytest.mark.s3
FAST = RetryPolicy(retries=3, initial=0.01, maximum=0.05)
SIZES = {"a.csv": 200_000, "tiny.csv": 1, "empty.csv": 0, "sub/big.csv": 9_000_000}
PREFIX = "root/landing/events/2021/01/31/b1"


def test_push_landing_verifies_every_mode_and_refuses_overwrite(
    tmp_path: Path, moto_server: MotoServer, bucket: str
) -> None:
    src = tmp_path / "src"
    data = write_files(src, SIZES)
    # small part size and single-put limit so both the single PUT and the multipart path run
    opts = moto_server.options(part_size=5 << 20, max_single_put=1 << 20)
    store = open_store(s3_location(bucket, PREFIX), opts)
    report = push_batch(src, store, write_once=True)
    assert report.count(FileStatus.VERIFIED) == len(SIZES)
    client = make_s3_client(opts)
    for name, body in data.items():
        got = client.get_object(Bucket=bucket, Key=f"{PREFIX}/{name}")
        assert got["Body"].read() == body
        if name != "sub/big.csv":  # a multipart upload starts before its sha256 is known: no metadata
            assert got["Metadata"]["sha256"] == hashlib.sha256(body).hexdigest()
    big = client.head_object(Bucket=bucket, Key=f"{PREFIX}/sub/big.csv")
    assert big["ETag"].strip('"').endswith("-2")  # the multipart path ran and its ETag was predicted
    manifest = Manifest.from_json(store.get_bytes(MANIFEST_NAME).decode())
    assert {f.path for f in manifest.files} == set(SIZES)
    assert all(f.key and f.key.startswith(f"s3://{bucket}/{PREFIX}/") for f in manifest.files)
    assert "testing" not in store.get_bytes(MANIFEST_NAME).decode()  # no credentials in the manifest
    for mode in VerifyMode:
        assert verify_batch(store, mode=mode).ok
    for mode in VerifyMode:
        assert push_batch(src, store, write_once=True, verify=mode).count(FileStatus.SKIPPED) == len(SIZES)
    write_files(src, {"a.csv": 200_000}, seed=7)
    with pytest.raises(WriteOnceError, match=r"a\.csv"):
        push_batch(src, store, write_once=True, retry=FAST)
    assert client.get_object(Bucket=bucket, Key=f"{PREFIX}/a.csv")["Body"].read() == data["a.csv"]
    with pytest.raises(WriteOnceError, match=r"tiny\.csv"):
        store.put_bytes("tiny.csv", b"x", write_once=True)
    assert client.get_object(Bucket=bucket, Key=f"{PREFIX}/tiny.csv")["Body"].read() == data["tiny.csv"]


def test_pull_round_trip(tmp_path: Path, moto_server: MotoServer, bucket: str) -> None:
    src = tmp_path / "src"
    data = write_files(src, {"x.csv": 50_000, "y/z.csv": 10})
    store = open_store(s3_location(bucket, "working/b2"), moto_server.options())
    push_batch(src, store, write_once=False)
    out = tmp_path / "out"
    assert pull_batch(store, out).count(FileStatus.VERIFIED) == 2
    assert {n: (out / n).read_bytes() for n in data} == data
    assert (out / MANIFEST_NAME).is_file()


def test_working_zone_overwrites_changed_files(tmp_path: Path, moto_server: MotoServer, bucket: str) -> None:
    src = tmp_path / "src"
    write_files(src, {"x.csv": 1000})
    store = open_store(s3_location(bucket, "working/b3"), moto_server.options())
    push_batch(src, store, write_once=False)
    new = write_files(src, {"x.csv": 1000}, seed=3)
    report = push_batch(src, store, write_once=False)
    assert report.count(FileStatus.VERIFIED) == 1
    assert store.get_bytes("x.csv") == new["x.csv"]


def test_server_side_encryption_is_requested(tmp_path: Path, moto_server: MotoServer, bucket: str) -> None:
    src = tmp_path / "src"
    write_files(src, {"x.csv": 1000})
    store = open_store(s3_location(bucket, "landing/b4"), moto_server.options(encryption=Encryption.AES256))
    push_batch(src, store, write_once=True)
    head = make_s3_client(moto_server.options()).head_object(Bucket=bucket, Key="landing/b4/x.csv")
    assert head["ServerSideEncryption"] == "AES256"


def test_janitor_aborts_leftover_multipart_uploads(moto_server: MotoServer, bucket: str) -> None:
    client = make_s3_client(moto_server.options())
    client.create_multipart_upload(Bucket=bucket, Key="working/b/x.csv")
    client.create_multipart_upload(Bucket=bucket, Key="elsewhere/y.csv")
    location = s3_location(bucket, "working")
    store = open_store(location, moto_server.options())
    report = run_janitor(location, store, moto_server.options(), older_than=timedelta(0))
    assert report.removed == 1
    assert "working/b/x.csv" in report.found[0]
    left = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["Key"] for u in left] == ["elsewhere/y.csv"]


def test_storage_check_reports_versioning_and_lock(moto_server: MotoServer, bucket: str) -> None:
    report = check_bucket(s3_location(bucket, ""), moto_server.options())
    assert report.versioning == "Disabled"
    assert report.object_lock == "Disabled"
    assert len(report.warnings) == 2
    client = make_s3_client(moto_server.options())
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert check_bucket(s3_location(bucket, ""), moto_server.options()).versioning == "Enabled"
    locked = "hw-locked-bucket"
    client.create_bucket(Bucket=locked, ObjectLockEnabledForBucket=True)
    report = check_bucket(s3_location(locked, ""), moto_server.options())
    assert report.versioning == "Enabled"
    assert report.object_lock.startswith("Enabled")
    assert report.warnings == []


def test_missing_bucket_fails_with_one_line_naming_it(tmp_path: Path, moto_server: MotoServer) -> None:
    src = tmp_path / "src"
    write_files(src, {"x.csv": 10})
    store = open_store(s3_location("no-such-bucket", "landing/b"), moto_server.options())
    with pytest.raises(StorageError, match="no-such-bucket") as info:
        push_batch(src, store, write_once=True, retry=FAST)
    assert "\n" not in str(info.value)


def test_plain_http_is_refused_off_loopback() -> None:
    with pytest.raises(UsageError, match="allow-insecure-http"):
        check_endpoint("http://s3.example.com:9000", allow_insecure_http=False)
    check_endpoint("http://s3.example.com:9000", allow_insecure_http=True)
    check_endpoint("http://127.0.0.1:9000", allow_insecure_http=False)
    check_endpoint("http://[::1]:9000", allow_insecure_http=False)
    check_endpoint("http://localhost:9000", allow_insecure_http=False)
    with pytest.raises(UsageError):
        open_store(Location(Scheme.S3, bucket="b"), StoreOptions(endpoint_url="http://10.1.2.3"))


def test_tls_endpoint_needs_the_right_ca(tmp_path: Path, moto_tls_server: MotoServer) -> None:
    bucket = "hw-tls-bucket"
    make_s3_client(moto_tls_server.options()).create_bucket(Bucket=bucket)
    src = tmp_path / "src"
    write_files(src, {"x.csv": 5000})
    trusted = open_store(s3_location(bucket, "landing/b"), moto_tls_server.options())
    assert push_batch(src, trusted, write_once=True).count(FileStatus.VERIFIED) == 1
    untrusted = open_store(s3_location(bucket, "landing/c"), moto_tls_server.options(ca_bundle=None))
    with pytest.raises(StorageError, match="landing/c") as info:
        push_batch(src, untrusted, write_once=True, retry=FAST)
    assert "TLS certificate is not trusted (UnknownIssuer)" in str(info.value)
    assert "gave up" not in str(info.value)  # not retried: a certificate does not fix itself
    # nothing landed through the connection that could not be trusted
    assert (
        make_s3_client(moto_tls_server.options()).list_objects_v2(Bucket=bucket, Prefix="landing/c")[
            "KeyCount"
        ]
        == 0
    )


def test_gcs_urls_build_a_gcs_store_without_contacting_it() -> None:
    store = open_store(Location(Scheme.GS, bucket="my-bucket", prefix="root/landing"))
    assert isinstance(store, CloudStore)
    assert store.url == "gs://my-bucket/root/landing"
    assert not store.server_digest  # GCS ETags are not MD5s: checksum mode reads back
    assert isinstance(store._store, obstore.store.GCSStore)


def test_gcs_plain_http_base_url_is_refused_in_one_line_without_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_BASE_URL", "http://127.0.0.1:9")  # obstore's own variable; never contacted
    monkeypatch.setenv("GOOGLE_BEARER_TOKEN", "test")
    write_files(tmp_path / "src", {"x.csv": 10})
    store = open_store(Location(Scheme.GS, bucket="b", prefix="landing/x"))
    with pytest.raises(StorageError, match=r"^gs://b/landing/x/x\.csv: .*plain http://") as info:
        push_batch(tmp_path / "src", store, write_once=True, retry=FAST)
    assert "\n" not in str(info.value)
    assert "gave up" not in str(info.value)  # not transient: a refused URL does not fix itself


def test_pull_without_manifest_checks_metadata_sha256(
    tmp_path: Path, moto_server: MotoServer, bucket: str
) -> None:
    src = tmp_path / "src"
    write_files(src, {"x.csv": 1000})
    store = open_store(s3_location(bucket, "working/nomanifest"), moto_server.options())
    push_batch(src, store, write_once=False)
    store.delete(MANIFEST_NAME)
    report = pull_batch(store, tmp_path / "out")
    assert [o.status for o in report.files] == [FileStatus.VERIFIED]  # checked against x-amz-meta-sha256


def test_kms_encryption_makes_checksum_mode_read_back(
    tmp_path: Path, moto_server: MotoServer, bucket: str
) -> None:
    src = tmp_path / "src"
    write_files(src, {"x.csv": 3000})
    opts = moto_server.options(encryption=Encryption.KMS, kms_key_id="alias/headwater-test")
    store = open_store(s3_location(bucket, "landing/kms"), opts)
    assert not store.server_digest  # SSE-KMS ETags are not MD5s: checksum mode must read the object back
    assert push_batch(src, store, write_once=True).count(FileStatus.VERIFIED) == 1
    head = make_s3_client(moto_server.options()).head_object(Bucket=bucket, Key="landing/kms/x.csv")
    assert head["ServerSideEncryption"] == "aws:kms"


def test_large_landing_file_uses_a_conditional_multipart_completion(
    tmp_path: Path, moto_server: MotoServer, bucket: str
) -> None:
    src = tmp_path / "src"
    data = write_files(src, {"big.csv": 11_000_000})
    opts = moto_server.options(part_size=5 << 20, max_single_put=1 << 20)
    store = open_store(s3_location(bucket, "landing/mp"), opts)
    assert push_batch(src, store, write_once=True).count(FileStatus.VERIFIED) == 1
    client = make_s3_client(opts)
    assert client.head_object(Bucket=bucket, Key="landing/mp/big.csv")["ETag"].strip('"').endswith("-3")
    other = tmp_path / "other.csv"
    other.write_bytes(b"x" * 11_000_000)
    # straight to the store, past push's own check: the server refuses the completion (If-None-Match: *)
    with pytest.raises(WriteOnceError, match=r"landing/mp/big\.csv"):
        store.put_file("big.csv", other, write_once=True, progress=lambda *a, **k: None, task="t")
    assert store.get_bytes("big.csv") == data["big.csv"]
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")  # the refused upload was aborted
