"""S3 for async invocations: an embedded moto server, or any S3-compatible endpoint.

The embedded server starts in a background thread (importing moto takes a second or so) so
that the emulator itself is listening at once; ``EmbeddedS3.url`` waits for it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` (or ``https://host/bucket/key``) → ``(bucket, key)``."""
    parts = urlsplit(uri)
    if parts.scheme == "s3":
        return parts.netloc, parts.path.lstrip("/")
    bucket, _, key = parts.path.lstrip("/").partition("/")
    return bucket, key


class EmbeddedS3:
    """moto's S3 in server mode on ``host``, on a free port."""

    def __init__(
        self,
        host: str,
        *,
        buckets: list[str] | None = None,
        region: str = "us-east-1",
        access_key_id: str = "sagestream",
        secret_access_key: str = "sagestream-secret",
    ) -> None:
        self._host = host
        self._buckets = [split_s3_uri(b)[0] for b in buckets or []]
        self._creds = (region, access_key_id, secret_access_key)
        self._server: Any = None
        self._ready = threading.Event()
        self._url: str | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start in the background; ``url`` blocks until it is listening."""
        self._thread = threading.Thread(target=self._run, name="sagestream-emulator-s3", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            from moto.server import ThreadedMotoServer

            # werkzeug would print a line per S3 call the emulator makes.
            werkzeug_log = logging.getLogger("werkzeug")
            if werkzeug_log.level == logging.NOTSET:
                werkzeug_log.setLevel(logging.WARNING)

            server = ThreadedMotoServer(ip_address=self._host, port=0, verbose=False)
            server.start()
            host, port = server.get_host_and_port()
            self._server = server
            bracketed = f"[{host}]" if ":" in host else host
            url = f"http://{bracketed}:{port}"
            store = S3Store(url, *self._creds)
            for bucket in self._buckets:
                store.ensure_bucket(bucket)
            self._url = url
        except BaseException as exc:  # reported to whoever asks for the URL
            self._error = exc
        finally:
            self._ready.set()

    @property
    def url(self) -> str:
        """The endpoint URL (waits for the server to listen)."""
        self._ready.wait()
        if self._error is not None:
            raise RuntimeError(
                "the embedded S3 server (moto) failed to start; install sagestream[s3] "
                f"or pass --s3-endpoint-url: {self._error!r}"
            )
        assert self._url is not None
        return self._url

    def stop(self) -> None:
        """Stop the server if it started."""
        if self._thread is not None:
            self._ready.wait()
        if self._server is not None:
            self._server.stop()
            self._server = None


class S3Store:
    """Blocking S3 calls (run in an executor by the server)."""

    def __init__(self, endpoint_url: str, region: str, access_key_id: str, secret_access_key: str) -> None:
        self._client = boto3.session.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            region_name=region,
        ).client(
            "s3",
            endpoint_url=endpoint_url,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
        )
        self._region = region
        self._buckets: set[str] = set()
        self._lock = threading.Lock()

    def ensure_bucket(self, bucket: str) -> None:
        """Create ``bucket`` unless it exists."""
        with self._lock:
            if bucket in self._buckets:
                return
            try:
                self._client.head_bucket(Bucket=bucket)
            except ClientError:
                kwargs: dict[str, Any] = {"Bucket": bucket}
                if self._region != "us-east-1":
                    kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self._region}
                try:
                    self._client.create_bucket(**kwargs)
                except ClientError as exc:
                    code = exc.response.get("Error", {}).get("Code")
                    if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise
            self._buckets.add(bucket)

    def get(self, uri: str) -> bytes:
        """The object at ``uri``."""
        bucket, key = split_s3_uri(uri)
        body: bytes = self._client.get_object(Bucket=bucket, Key=key)["Body"].read()
        return body

    def put(self, uri: str, data: bytes, content_type: str) -> None:
        """Write ``data`` at ``uri`` (creating the bucket if needed)."""
        bucket, key = split_s3_uri(uri)
        self.ensure_bucket(bucket)
        self._client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
