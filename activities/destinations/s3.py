"""`S3`, `AwsS3`, `S3Compatible`: one object per interval (and per continued segment), via multipart upload.

The key depends only on the export and the interval (`{prefix}/{start}-{end}[-{n}].jsonl[.gz]`, the
prefix templated), and an object appears only when its upload completes, replacing any earlier copy as
a whole: a rerun leaves exactly one copy of each record. Parts go up while the next ones are encoded,
a few at a time; an aborted write abandons its upload and leaves the previous object in place.
"""

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from activities.destinations import DestinationUserError, IntervalWriter
from activities.destinations.layout import interval_file_name
from activities.formats import Encoder
from batch_exports.destination_configs import S3Config

PART_BYTES = 8 * 2**20
"""Every part but the last must be at least 5 MiB."""
PARTS_IN_FLIGHT = 4
USER_ERROR_CODES = {
    "NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled",
    "InvalidBucketName", "KMS.NotFoundException", "KMS.DisabledException", "InvalidArgument",
    "AuthorizationHeaderMalformed",
}  # fmt: skip


def object_key(config: S3Config, table: str, suffix: str, start: datetime, end: datetime, segment: int) -> str:
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    prefix = config.prefix.format(
        year=f"{start:%Y}", month=f"{start:%m}", day=f"{start:%d}", hour=f"{start:%H}", minute=f"{start:%M}",
        table=table, data_interval_start=start.isoformat(), data_interval_end=end.isoformat(),
    ).strip("/")  # fmt: skip
    name = interval_file_name(start, end, suffix, segment)
    return f"{prefix}/{name}" if prefix else name


def user_error(error: ClientError, config: S3Config) -> DestinationUserError | None:
    code = error.response.get("Error", {}).get("Code", "")
    if code in USER_ERROR_CODES:
        return DestinationUserError(
            f"S3 bucket {config.bucket_name}: {code}: {error.response['Error'].get('Message', '')}"
        )
    return None


def client(config: S3Config) -> Any:
    return get_session().create_client(
        "s3",
        region_name=config.region,
        endpoint_url=config.endpoint_url,
        aws_access_key_id=config.aws_access_key_id,
        aws_secret_access_key=config.aws_secret_access_key,
    )


class S3Writer(IntervalWriter):
    def __init__(
        self, config: S3Config, table: str, encoder: Encoder, start: datetime, end: datetime, segment: int = 0
    ) -> None:
        self.config = config
        self.key = object_key(config, table, encoder.suffix, start, end, segment)
        self._client_context: Any = None
        self._client: Any = None
        self._upload_id: str | None = None
        self._parts: list[asyncio.Task[dict[str, Any]]] = []
        self._slots = asyncio.Semaphore(PARTS_IN_FLIGHT)
        self._buffer = bytearray()
        self._encoder = encoder

    def _extra(self) -> dict[str, str]:
        extra: dict[str, str] = {}
        if self.config.encryption:
            extra["ServerSideEncryption"] = self.config.encryption
        if self.config.kms_key_id:
            extra["SSEKMSKeyId"] = self.config.kms_key_id
        return extra

    async def _s3(self) -> Any:
        if self._client is None:
            self._client_context = client(self.config)
            self._client = await self._client_context.__aenter__()
        return self._client

    async def write(self, batch: pa.RecordBatch) -> None:
        data = await asyncio.to_thread(self._encoder.encode, batch)
        self.bytes_written += len(data)
        self._buffer += data
        while len(self._buffer) >= PART_BYTES:
            await self._send_part(bytes(self._buffer[:PART_BYTES]))
            del self._buffer[:PART_BYTES]

    async def _send_part(self, body: bytes) -> None:
        s3 = await self._s3()
        if self._upload_id is None:
            started = await self._call(
                s3.create_multipart_upload(Bucket=self.config.bucket_name, Key=self.key, **self._extra())
            )
            self._upload_id = started["UploadId"]
        number = len(self._parts) + 1
        await self._slots.acquire()

        async def upload() -> dict[str, Any]:
            try:
                part = await self._call(
                    s3.upload_part(
                        Bucket=self.config.bucket_name,
                        Key=self.key,
                        PartNumber=number,
                        UploadId=self._upload_id,
                        Body=body,
                    )
                )
                return {"PartNumber": number, "ETag": part["ETag"]}
            finally:
                self._slots.release()

        self._parts.append(asyncio.create_task(upload()))

    async def commit(self) -> None:
        """Make the object appear whole; on failure the caller aborts, which abandons the upload."""
        tail = self._encoder.finish()
        self.bytes_written += len(tail)
        self._buffer += tail
        s3 = await self._s3()
        if self._upload_id is None:  # small enough for one request
            body = bytes(self._buffer)
            await self._call(s3.put_object(Bucket=self.config.bucket_name, Key=self.key, Body=body, **self._extra()))
        else:
            if self._buffer:
                await self._send_part(bytes(self._buffer))
            parts = await asyncio.gather(*self._parts)
            await self._call(
                s3.complete_multipart_upload(
                    Bucket=self.config.bucket_name,
                    Key=self.key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": parts},
                )
            )
            self._upload_id = None
        await self._close()

    async def abort(self) -> None:
        for task in self._parts:
            task.cancel()
        if self._upload_id is not None and self._client is not None:
            # On failure the bucket's lifecycle rules clean the parts; the object itself is untouched.
            with contextlib.suppress(ClientError, BotoCoreError):
                await self._client.abort_multipart_upload(
                    Bucket=self.config.bucket_name, Key=self.key, UploadId=self._upload_id
                )
        await self._close()

    async def _call(self, request: Any) -> Any:
        try:
            return await request
        except ClientError as error:
            if problem := user_error(error, self.config):
                raise problem from error
            raise

    async def _close(self) -> None:
        context, self._client_context, self._client = self._client_context, None, None
        if context is not None:
            await context.__aexit__(None, None, None)
