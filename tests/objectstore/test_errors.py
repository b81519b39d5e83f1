"""Object-store failures: missing bucket, wrong credentials, access denied, a network drop mid-upload
(retried, through a loopback proxy this test starts and stops), an unreachable endpoint."""

from __future__ import annotations

import json

import pytest

import nebula
from nebula.errors import ConnectionFailed, DestinationError, SourceError

from .._proxy import FaultProxy
from ._data import orders_csv
from .conftest import _tool, free_port, start_server, stop_server


@pytest.fixture(scope="module")
def local_csv(tmp_path_factory):
    p = tmp_path_factory.mktemp("in") / "orders.csv"
    p.write_bytes(orders_csv())
    return p


def test_missing_bucket(s3, local_csv):
    with pytest.raises(DestinationError, match="bucket 'nb-missing-bucket' does not exist") as e:
        nebula.copy(str(local_csv), "s3://nb-missing-bucket/x.csv")
    assert e.value.retryable is False
    with pytest.raises(SourceError) as e:
        nebula.read_csv("s3://nb-missing-bucket/x.csv")
    assert e.value.retryable is False
    with pytest.raises(DestinationError, match="does not exist"):
        nebula.copy(str(local_csv), "s3://nb-missing-bucket/dir/", partition_by="country")


def test_missing_bucket_gcs(gs, local_csv):
    with pytest.raises(DestinationError) as e:
        nebula.copy(str(local_csv), "gs://nb-missing-bucket/x.parquet")
    assert e.value.retryable is False


@pytest.fixture(scope="module")
def iam_s3(tmp_path_factory):
    """A moto server that checks signatures and IAM policies: a user allowed only on ``nb-allowed``."""
    import boto3

    port = free_port()
    proc = start_server([_tool("moto_server"), "-H", "127.0.0.1", "-p", str(port)], port, "moto_server_iam",
                        tmp_path_factory.mktemp("moto_iam"), env={"INITIAL_NO_AUTH_ACTION_COUNT": "3"})
    ep = f"http://127.0.0.1:{port}"
    iam = boto3.client("iam", endpoint_url=ep, region_name="us-east-1", aws_access_key_id="x",
                       aws_secret_access_key="x")
    iam.create_user(UserName="nebula")
    key = iam.create_access_key(UserName="nebula")["AccessKey"]
    iam.put_user_policy(UserName="nebula", PolicyName="p", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["s3:*"], "Resource": ["arn:aws:s3:::nb-allowed", "arn:aws:s3:::nb-allowed/*"]},
            {"Effect": "Allow", "Action": ["s3:CreateBucket"], "Resource": ["*"]}]}))
    user = boto3.client("s3", endpoint_url=ep, region_name="us-east-1", aws_access_key_id=key["AccessKeyId"],
                        aws_secret_access_key=key["SecretAccessKey"])
    user.create_bucket(Bucket="nb-allowed")
    user.create_bucket(Bucket="nb-denied")
    yield ep, key["AccessKeyId"], key["SecretAccessKey"]
    stop_server(proc)


def _creds(monkeypatch, ep, ak, sk):
    monkeypatch.setenv("AWS_ENDPOINT_URL", ep)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ak)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", sk)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("NEBULA_FS_RETRIES", "2")


def test_credentials_and_access(iam_s3, local_csv, monkeypatch):
    ep, ak, sk = iam_s3
    _creds(monkeypatch, ep, ak, sk)
    assert nebula.copy(str(local_csv), "s3://nb-allowed/x.csv").rows_written == 500
    assert nebula.read_csv("s3://nb-allowed/x.csv").num_rows == 500
    with pytest.raises(DestinationError, match="access denied") as e:
        nebula.copy(str(local_csv), "s3://nb-denied/x.csv")
    assert e.value.retryable is False
    for bad_ak, bad_sk in ((ak, "wrong-secret"), ("AKIAWRONGWRONGWRONG0", sk)):
        _creds(monkeypatch, ep, bad_ak, bad_sk)
        with pytest.raises(DestinationError, match="access denied") as e:
            nebula.copy(str(local_csv), "s3://nb-allowed/y.csv")
        assert e.value.retryable is False
        assert bad_sk not in str(e.value)
        with pytest.raises(SourceError, match="access denied"):
            nebula.read_csv("s3://nb-allowed/x.csv")


def test_network_drop_mid_upload_is_retried(s3, moto_endpoint, tmp_path, monkeypatch):
    big = tmp_path / "big.csv"
    big.write_bytes(orders_csv(120_000))  # ~6 MB of CSV: a multipart upload
    proxy = FaultProxy(int(moto_endpoint.rsplit(":", 1)[1]))
    proxy.drop_all_after(2_000_000)  # every open connection is cut once 2 MB went upstream
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("NEBULA_FS_RETRIES", "5")
        r = nebula.copy(str(big), s3.url("net/big.csv"))
        assert proxy.drops == 1
    finally:
        proxy.stop()
    assert r.rows_written == 120_000
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    back = nebula.read_csv(s3.url("net/big.csv"))
    assert back.num_rows == 120_000
    assert back.column("id").to_pylist() == list(range(120_000))


def test_unreachable_endpoint_is_retryable(tmp_path, local_csv, monkeypatch):
    port = free_port()  # nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("NEBULA_FS_RETRIES", "1")
    with pytest.raises(ConnectionFailed) as e:
        nebula.copy(str(local_csv), "s3://nb-any/x.csv")
    assert e.value.retryable is True
    with pytest.raises(ConnectionFailed):
        nebula.read_csv("s3://nb-any/x.csv")


def test_nebula_check_probes_the_bucket(s3, local_csv, tmp_path):
    from nebula.config import load_config
    from nebula.health import check_pipeline

    cfg = load_config(f"""
pipelines:
  - {{name: ok, source: "{local_csv}", destination: "{s3.url('a/x.parquet')}"}}
  - {{name: dir, source: "{local_csv}", destination: "{s3.url('t/')}", partition_by: country}}
  - {{name: nobucket, source: "{local_csv}", destination: "s3://nb-no-such-bucket/x.csv"}}
  - {{name: local, source: "{local_csv}", destination: "{tmp_path}/o/x.csv"}}
""")
    reports = {pc.name: check_pipeline(pc)[-1] for pc in cfg.pipelines}
    assert reports["ok"]["status"] == "healthy" and reports["dir"]["status"] == "healthy"
    assert reports["local"]["status"] == "healthy"
    assert reports["nobucket"]["status"] == "failing" and "does not exist" in reports["nobucket"]["reason"]
    assert s3.keys() == []  # the probes are gone


def test_unreachable_gcs_endpoint_is_retryable(local_csv, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("NEBULA_FS_RETRIES", "1")
    with pytest.raises(ConnectionFailed, match="unreachable") as e:
        nebula.copy(str(local_csv), "gs://nb-any/x.csv")
    assert e.value.retryable is True and "error_info" not in str(e.value)


def test_missing_bucket_is_named_on_reads_and_gcs_writes(s3, gs, local_csv):
    for url in ("s3://nb-missing-bucket/x.csv", "s3://nb-missing-bucket/dir/*.csv", "gs://nb-missing-bucket/x.csv"):
        with pytest.raises(SourceError, match="bucket 'nb-missing-bucket' does not exist") as e:
            nebula.read_csv(url)
        assert e.value.retryable is False
    with pytest.raises(SourceError, match="no such object"):  # the bucket is there, the object is not
        nebula.read_csv(s3.url("missing.csv"))
    with pytest.raises(DestinationError, match="bucket 'nb-missing-bucket' does not exist"):
        nebula.copy(str(local_csv), "gs://nb-missing-bucket/x.csv")
    with pytest.raises(DestinationError, match="bucket 'nb-missing-bucket' does not exist"):
        nebula.copy(str(local_csv), "gs://nb-missing-bucket/t/", partition_by="country")


@pytest.mark.parametrize("content", ['{"type": "service_account", "project_id": "p"}', "not json", None])
def test_unusable_google_application_credentials(local_csv, tmp_path, monkeypatch, content):
    """GOOGLE_APPLICATION_CREDENTIALS is what the GCS client authenticates with (no emulator set): a file
    it cannot use is a typed, non-retryable error naming it, before any request is sent."""
    import subprocess

    from .test_kill import NEBULA

    creds = tmp_path / "sa.json"
    if content is not None:
        creds.write_text(content)
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(creds))
    with pytest.raises(DestinationError, match=r"credentials \(GOOGLE_APPLICATION_CREDENTIALS\) cannot be used") as e:
        nebula.copy(str(local_csv), "gs://nb-any/x.csv")
    assert e.value.retryable is False and str(creds) in str(e.value)
    with pytest.raises(SourceError, match="cannot be used"):
        nebula.read_csv("gs://nb-any/x.csv")
    with pytest.raises(DestinationError, match="cannot be used"):
        nebula.copy(str(local_csv), "gs://nb-any/t/", partition_by="country")
    r = subprocess.run([*NEBULA, "copy", str(local_csv), "gs://nb-any/x.parquet", "--no-progress", "--state",
                        str(tmp_path / "s.db")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "cannot be used" in r.stderr and "internal error" not in r.stderr


@pytest.mark.parametrize("dest,opts,msg", [
    ("l/x.parquet", {"compression": "zstd", "compression_level": 99}, "out of range for zstd"),
    ("l/x.parquet", {"compression": "snappy", "compression_level": 3}, "'snappy' takes no compression_level"),
    ("l/x.parquet", {"compression": "none", "compression_level": 3}, "'none' takes no compression_level"),
    ("l/x.csv.gz", {"compression_level": 10}, "out of range for gzip"),
    ("l/x.jsonl.zst", {"compression_level": 23}, "out of range for zstd"),
    ("l/x.csv.lz4", {"compression_level": 17}, "out of range for lz4"),
    ("l/x.csv", {"compression_level": 3}, "'none' takes no compression_level"),
    ("l/x.parquet", {"compression_level": "9"}, "must be an integer"),
    ("l/t/", {"compression_level": 99}, "out of range for zstd"),
    ("l/t/", {"compression": "lzma"}, "unknown Parquet compression 'lzma'"),
])
def test_bad_compression_level_is_a_config_error(s3, local_csv, dest, opts, msg):
    from nebula.errors import ConfigError

    with pytest.raises(ConfigError, match=msg):
        nebula.copy(str(local_csv), s3.url(dest), dest_options=opts)
    assert s3.keys() == []


@pytest.mark.parametrize("dest,opts", [("l/x.parquet", {"compression": "zstd", "compression_level": 22}),
                                       ("l/x.parquet", {"compression": "brotli", "compression_level": 0}),
                                       ("l/x.csv.gz", {"compression_level": 0}),
                                       ("l/x.jsonl.zst", {"compression_level": -5}),
                                       ("l/x.csv.lz4", {"compression_level": 16})])
def test_levels_at_the_ends_of_the_ranges_work(s3, local_csv, dest, opts):
    assert nebula.copy(str(local_csv), s3.url(dest), dest_options=opts).rows_written == 500
