"""``Emulator``: the server in a background thread, for tests and tools."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from types import TracebackType
from typing import Any

from .config import EmulatorConfig
from .requestlog import RequestLog
from .server import EmulatorServer, Stats

__all__ = ["Emulator"]


class Emulator:
    """A local SageMaker Runtime endpoint, served from a background thread.

    ``Emulator(config=None, **overrides)``: the fields of :class:`EmulatorConfig` (``config``,
    or the defaults with ``port=0``, a free port) with ``overrides`` applied, e.g.
    ``Emulator(endpoints={"chat": "demo:sse", "mirror": "echo"}, embedded_s3=True)``.
    ``endpoints=None`` serves every name with the demo model. Use as a context manager, or
    call ``start()`` / ``stop()``.
    """

    def __init__(self, config: EmulatorConfig | None = None, **overrides: Any) -> None:
        base = config if config is not None else EmulatorConfig(port=0)
        if "endpoints" in overrides and overrides["endpoints"] is not None:
            overrides["endpoints"] = dict(overrides["endpoints"])
        self.config = dataclasses.replace(base, **overrides)
        self.server = EmulatorServer(self.config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    host = property(lambda self: self.server.host, doc="The address it listens on.")
    port = property(lambda self: self.server.port, doc="The port it listens on.")
    region = property(lambda self: self.config.region, doc="The region clients must sign for.")
    access_key_id = property(lambda self: self.config.access_key_id, doc="The accepted access key id.")
    secret_access_key = property(lambda self: self.config.secret_access_key, doc="Its secret key.")

    @property
    def url(self) -> str:
        """``http://host:port``: the endpoint URL for SDK clients."""
        return self.server.url

    @property
    def duplex_url(self) -> str:
        """``http://host:port`` of InvokeEndpointWithBidirectionalStream (cleartext HTTP/2)."""
        return self.server.duplex.url

    @property
    def duplex_tls_url(self) -> str | None:
        """``https://localhost:port`` of the same over TLS (``duplex_tls=True``), else None."""
        return self.server.duplex.tls_url

    @property
    def duplex_ca_file(self) -> str | None:
        """The PEM file of the CA that issued the TLS port's certificate (``verify=`` it)."""
        cert = self.server.duplex.certificate
        return None if cert is None else str(cert.ca_file)

    @property
    def s3_endpoint_url(self) -> str | None:
        """The S3 endpoint (embedded or given) async invocations use, or None."""
        return self.server.s3_endpoint_url

    @property
    def stats(self) -> Stats:
        """Request, part and byte counters."""
        return self.server.stats

    @property
    def request_log(self) -> RequestLog:
        """One :class:`~sagestream.emulator.RequestRecord` per request answered (thread-safe)."""
        return self.server.request_log

    def cpu_time(self) -> float:
        """CPU seconds the server thread has used so far (Linux; 0.0 elsewhere)."""
        thread = self._thread
        if thread is None or thread.ident is None or not hasattr(time, "pthread_getcpuclockid"):
            return 0.0
        try:
            return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
        except OSError:
            return 0.0

    def start(self) -> Emulator:
        """Start serving; returns once the socket listens."""
        if self._thread is not None:
            raise RuntimeError("the emulator is already running")
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.server.start())
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.server.stop())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="sagestream-emulator", daemon=True)
        self._thread.start()
        ready.wait()
        if errors:
            self._thread.join()
            self._thread = None
            raise errors[0]
        return self

    def stop(self) -> None:
        """Stop serving (and the embedded S3 server)."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._thread = None
        self._loop = None

    def __enter__(self) -> Emulator:
        return self.start() if self._thread is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def boto3_client(self, service_name: str = "sagemaker-runtime", **client_kwargs: Any) -> Any:
        """A stock boto3 client for ``"sagemaker-runtime"`` or ``"s3"`` wired to this emulator."""
        import boto3

        session = boto3.session.Session(
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            region_name=self.region,
        )
        if service_name == "s3":
            client_kwargs.setdefault("endpoint_url", self.s3_endpoint_url)
        else:
            client_kwargs.setdefault("endpoint_url", self.url)
        return session.client(service_name, **client_kwargs)
