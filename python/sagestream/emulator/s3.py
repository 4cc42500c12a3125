"""S3 for async invocations: an embedded moto S3, or any S3-compatible endpoint.

The embedded server is moto's S3 application (``sagestream[serve]``) served on loopback only
(127.0.0.1, whatever ``--host`` says) behind a WSGI layer that verifies SigV4 with the
emulator's own credentials (:mod:`.sigv4`, S3's rules: the path signed as sent, the payload
hash in ``x-amz-content-sha256``). moto's server mode checks no signature and answers
``/moto-api/`` (its whole state, and a reset) to anyone, so neither is reachable: only signed
S3 requests reach moto. moto has an authentication mode, but it checks credentials of IAM users
created inside moto, not a given key pair, and leaves ``/moto-api/`` open.

Not verified: the per-chunk signatures of ``aws-chunked`` uploads
(``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``; the request's own signature is) and presigned URLs
(refused). The server starts in a background thread (importing moto takes a second or so)
so the emulator listens at once; ``EmbeddedS3.url`` waits for it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import socket
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from .protocol import EmulatorError, s3_error_body
from .sigv4 import UNSIGNED_HEADERS, check_request

__all__ = ["EmbeddedS3", "S3Store", "moto_available", "split_s3_uri"]

#: The address the embedded S3 listens on, always.
LOOPBACK = "127.0.0.1"
#: Largest object the embedded S3 accepts in one PUT (the async input limit of the service).
MAX_OBJECT_BYTES = 1024 * 1024 * 1024
_SPOOL_IN_MEMORY = 8 * 1024 * 1024
_READ = 64 * 1024


def moto_available() -> bool:
    """Whether moto (the ``s3`` extra) is installed."""
    return importlib.util.find_spec("moto") is not None


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` (or ``https://host/bucket/key``) → ``(bucket, key)``."""
    parts = urlsplit(uri)
    if parts.scheme == "s3":
        return parts.netloc, parts.path.lstrip("/")
    bucket, _, key = parts.path.lstrip("/").partition("/")
    return bucket, key


_StartResponse = Callable[..., Any]
_WSGIApp = Callable[[dict[str, Any], _StartResponse], Iterable[bytes]]


def _s3_error(exc: EmulatorError) -> tuple[int, str, str]:
    """A runtime-style auth error as S3 words it: status, code, message."""
    code = exc.code
    if code == "MissingAuthenticationTokenException":
        return 403, "AccessDenied", "Access Denied: the emulator's S3 needs signed requests."
    if code == "UnrecognizedClientException":
        return 403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records."
    if code == "IncompleteSignatureException":
        return 400, "AuthorizationHeaderMalformed", exc.message
    if exc.message.startswith(UNSIGNED_HEADERS):
        return 403, "AccessDenied", exc.message
    if exc.message.startswith(("Signature expired", "Signature not yet current")):
        return 403, "RequestTimeTooSkewed", exc.message
    if code == "InvalidSignatureException":
        return 403, "SignatureDoesNotMatch", exc.message
    return exc.status, code, exc.message


class _VerifyingApp:
    """WSGI middleware: only requests signed with the emulator's credentials reach moto."""

    def __init__(self, app: _WSGIApp, credentials: dict[str, str], region: str) -> None:
        self._app = app
        self._credentials = credentials
        self._region = region

    def __call__(self, environ: dict[str, Any], start_response: _StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or quote(path)
        raw_path = raw.split("?", 1)[0]
        if path.startswith("/moto-api") or raw_path.startswith("/moto-api"):
            return self._error(start_response, 403, "AccessDenied", "Not an S3 request.")
        query = environ.get("QUERY_STRING", "")
        if "X-Amz-Signature=" in query:
            return self._error(
                start_response, 403, "AccessDenied", "Presigned URLs are not supported by the emulator's S3."
            )
        headers: dict[str, list[str]] = {}
        spool = None
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                name = key[5:].replace("_", "-").lower()
            elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
                name = key.replace("_", "-").lower()
            else:
                continue
            headers[name] = [value]
        try:
            signed = check_request(
                method=environ.get("REQUEST_METHOD", "GET"),
                raw_path=raw_path,
                query_string=query,
                headers=headers,
                credentials=self._credentials,
                region=self._region,
                service="s3",
                s3=True,
            )
            if signed.body_is_signed:
                spool = environ["wsgi.input"] = self._verified_body(environ, signed)
        except EmulatorError as exc:
            status, code, message = _s3_error(exc)
            return self._error(start_response, status, code, message)
        try:
            # moto's Flask views read the whole request while called; only the answer is lazy.
            return self._app(environ, start_response)
        finally:
            if spool is not None:
                spool.close()

    @staticmethod
    def _verified_body(environ: dict[str, Any], signed: Any) -> Any:
        """The body, hashed while it is read (to memory, then to disk past 8 MiB)."""
        length_text = environ.get("CONTENT_LENGTH") or ""
        remaining = int(length_text) if length_text.isdigit() else None
        if remaining is None and not environ.get("wsgi.input_terminated"):
            remaining = 0  # neither a length nor chunked: there is no body
        if remaining is not None and remaining > MAX_OBJECT_BYTES:
            raise EmulatorError(
                400, "EntityTooLarge", f"Objects are limited to {MAX_OBJECT_BYTES} bytes here."
            )
        source = environ["wsgi.input"]
        # Handed to moto as its input stream, closed once moto has read it.
        spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115
        digest = hashlib.sha256()
        size = 0
        while remaining is None or remaining > 0:
            data = source.read(_READ if remaining is None else min(_READ, remaining))
            if not data:
                break
            size += len(data)
            if size > MAX_OBJECT_BYTES:
                raise EmulatorError(
                    400, "EntityTooLarge", f"Objects are limited to {MAX_OBJECT_BYTES} bytes here."
                )
            digest.update(data)
            spool.write(data)
            if remaining is not None:
                remaining -= len(data)
        signed.verify_payload(digest.hexdigest())
        spool.seek(0)
        environ["CONTENT_LENGTH"] = str(size)
        return spool

    @staticmethod
    def _error(start_response: _StartResponse, status: int, code: str, message: str) -> list[bytes]:
        return [s3_error_response(start_response, status, code, message)]


def s3_error_response(start_response: _StartResponse, status: int, code: str, message: str) -> bytes:
    """Start an S3 XML error response; its body."""
    request_id = uuid.uuid4().hex.upper()[:16]
    body = s3_error_body(code, message, request_id)
    reason = {400: "Bad Request", 403: "Forbidden", 404: "Not Found"}.get(status, "Error")
    start_response(
        f"{status} {reason}",
        [
            ("Content-Type", "application/xml"),
            ("Content-Length", str(len(body))),
            ("x-amz-request-id", request_id),
        ],
    )
    return body


class EmbeddedS3:
    """moto's S3 on 127.0.0.1 (``port``; 0: a free one), signed requests only.

    ``buckets`` are bucket names or ``s3://`` URIs, whose buckets are created at start.
    """

    def __init__(
        self,
        *,
        buckets: list[str] | None = None,
        region: str = "us-east-1",
        access_key_id: str = "sagestream",
        secret_access_key: str = "sagestream-secret",
        idle_timeout: float = 60.0,
        port: int = 0,
    ) -> None:
        names = (split_s3_uri(b)[0] if "://" in b else b for b in buckets or [])
        self.buckets = list(dict.fromkeys(names))
        self._creds = (region, access_key_id, secret_access_key)
        self._idle_timeout = idle_timeout
        self._port = port
        self._listener: socket.socket | None = None
        self._server: Any = None
        self._ready = threading.Event()
        self._url: str | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._serving: threading.Thread | None = None

    def start(self) -> None:
        """Listen now (``OSError`` if the port is taken), serve from the background.

        ``url`` blocks until moto is loaded and the buckets exist.
        """
        self._listener = socket.create_server((LOOPBACK, self._port))
        self._port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._run, name="sagestream-emulator-s3", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        """The port it listens on (after ``start()``)."""
        return self._port

    def _run(self) -> None:
        try:
            from moto.moto_server.werkzeug_app import create_backend_app
            from werkzeug.serving import WSGIRequestHandler, make_server

            # werkzeug would print a line per S3 call the emulator makes.
            werkzeug_log = logging.getLogger("werkzeug")
            if werkzeug_log.level == logging.NOTSET:
                werkzeug_log.setLevel(logging.WARNING)

            class Handler(WSGIRequestHandler):
                # A connection that sends nothing is closed after this many seconds.
                timeout = self._idle_timeout

            region, key, secret = self._creds
            app = _VerifyingApp(create_backend_app("s3"), {key: secret}, region)
            assert self._listener is not None
            server = make_server(  # werkzeug serves a duplicate of the listening socket
                LOOPBACK, self._port, app, threaded=True, request_handler=Handler, fd=self._listener.fileno()
            )
            self._listener.close()
            self._server = server
            self._serving = threading.Thread(
                target=server.serve_forever, name="sagestream-emulator-s3-serve", daemon=True
            )
            self._serving.start()
            url = f"http://{LOOPBACK}:{server.server_address[1]}"
            store = S3Store(url, region, key, secret)
            for bucket in self.buckets:
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
                "the embedded S3 server (moto) failed to start; install sagestream[serve] "
                f"or pass --s3-endpoint-url: {self._error!r}"
            )
        assert self._url is not None
        return self._url

    @property
    def url_if_ready(self) -> str | None:
        """The endpoint URL if the server already listens, without waiting."""
        return self._url if self._ready.is_set() else None

    def stop(self) -> None:
        """Stop the server if it started."""
        if self._thread is not None:
            self._ready.wait()
        if self._listener is not None:
            self._listener.close()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
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
