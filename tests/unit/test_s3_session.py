"""S3 clients share one botocore session, which keeps the models it loaded: a new client (one per export) parses
none of botocore's JSON files again."""

import ssl
import sys
from pathlib import Path

from connectors.destinations.base import Context
from connectors.destinations.object_stores.s3 import S3Config, client

opened: list[str] = []
recording: list[bool] = []


def _record(event: str, args: tuple[object, ...]) -> None:
    if recording and event == "open" and isinstance(args[0], str) and "botocore" in args[0]:
        opened.append(args[0])


sys.addaudithook(_record)  # for the process; it records only while a test asks


async def test_a_new_client_reads_no_botocore_file_again(tmp_path: Path) -> None:
    context = Context(files_root=tmp_path, allow_private=False)
    first = S3Config(bucket_name="first-bucket", aws_access_key_id="AKIA1", aws_secret_access_key="one")
    second = S3Config(bucket_name="other-bucket", region="eu-west-1", aws_access_key_id="AKIA2",
                      aws_secret_access_key="two")  # fmt: skip
    async with client(first, context):
        pass  # the process's first client may load the models
    recording.append(True)
    try:
        async with client(second, context) as s3:
            credentials = await s3._request_signer._credentials.get_frozen_credentials()
    finally:
        recording.clear()
    assert opened == []
    assert (credentials.access_key, credentials.secret_key) == ("AKIA2", "two")  # its own keys, not the first's


async def test_clients_share_one_tls_context_that_still_verifies(tmp_path: Path) -> None:
    """The CA bundle is loaded once for the process (about 35 ms of CPU each time), not for every client."""
    context = Context(files_root=tmp_path, allow_private=False)
    configs = [S3Config(bucket_name=f"bucket-{n}", aws_access_key_id=f"AKIA{n}", aws_secret_access_key="secret")
               for n in range(2)]  # fmt: skip
    tls = []
    for config in configs:
        async with client(config, context) as s3:
            connector = await s3._endpoint.http_session._create_connector(None)
            tls.append(connector._ssl)
            await connector.close()
    assert isinstance(tls[0], ssl.SSLContext)
    assert tls[0] is tls[1]
    assert tls[0].verify_mode == ssl.CERT_REQUIRED and tls[0].check_hostname
    assert tls[0].cert_store_stats()["x509_ca"] > 0  # the bundle's authorities
