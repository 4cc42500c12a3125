"""Where an integration's clients come from: the one it was given, or ones built from keywords.

A framework model holds one configuration and may be called from threads and from any event
loop. An :class:`~sagestream.AsyncClient` belongs to the loop it first ran on, and frameworks
run models on whatever loop they have (a Strands ``Agent`` called synchronously starts a new
loop for each call), so the async side keeps one AsyncClient per running loop, all built from
the same settings and one ``boto3.Session``; the clients of loops that have closed are dropped.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import boto3

    from sagestream import AsyncClient, Client

__all__ = ["Clients"]


def _is_botocore_client(value: object) -> bool:
    return hasattr(value, "meta") and hasattr(value, "invoke_endpoint_with_response_stream")


#: The keywords that build the boto3 session (with ``profile_name``), unless one is given.
_CREDENTIALS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
#: The keywords both clients are made with.
_CLIENT_SETTINGS = ("region_name", "endpoint_url", "config", "verify")


class Clients:
    """The sync client and the per-loop async clients of one integration object.

    ``client`` is a :class:`sagestream.Client`, a :class:`sagestream.AsyncClient`, or a boto3
    ``sagemaker-runtime`` client (taken over with ``from_boto3``); without it, the keywords
    build the clients: ``session`` (a ``boto3.Session``) or ``profile_name`` (a profile of the
    shared config files) and the credentials, and ``region_name``, ``endpoint_url``, ``config``
    and ``verify``.
    """

    def __init__(self, client: Any = None, *, session: boto3.Session | None = None, **settings: Any) -> None:
        from sagestream import AsyncClient, Client

        unknown = sorted(set(settings) - {"profile_name", *_CREDENTIALS, *_CLIENT_SETTINGS})
        if unknown:
            raise TypeError(f"unexpected keyword arguments: {', '.join(unknown)}")
        given = sorted(name for name, value in {"session": session, **settings}.items() if value is not None)
        if client is not None and given:
            raise TypeError(
                f"give either client= or the client's keyword arguments, not both (got client= and {given})"
            )
        if client is not None and not isinstance(client, (Client, AsyncClient)):
            if not _is_botocore_client(client):
                raise TypeError(
                    "client must be a sagestream.Client, a sagestream.AsyncClient or a boto3"
                    f" sagemaker-runtime client, got {type(client).__name__}"
                )
            client = self._take_over(Client, client)
        self._client = client
        self._session = session
        self._profile_name = settings.get("profile_name")
        self._credentials = {name: settings.get(name) for name in _CREDENTIALS}
        self._options: dict[str, Any] = {name: settings.get(name) for name in _CLIENT_SETTINGS}
        self._sync: Client | None = client if isinstance(client, Client) else None
        self._given_async: AsyncClient | None = client if isinstance(client, AsyncClient) else None
        self._loops: dict[asyncio.AbstractEventLoop, AsyncClient] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _take_over(kind: type[Any], runtime_client: Any) -> Any:
        from_boto3 = getattr(kind, "from_boto3", None)
        if from_boto3 is None:
            raise TypeError(
                f"this sagestream has no {kind.__name__}.from_boto3: pass a sagestream.{kind.__name__}"
                " or the client's keyword arguments (region_name=, endpoint_url=, config=, ...)"
            )
        return from_boto3(runtime_client)

    def _boto3_session(self) -> boto3.Session:
        # Called with the lock held.
        if self._session is None:
            import boto3

            self._session = boto3.Session(
                profile_name=self._profile_name, region_name=self._options["region_name"], **self._credentials
            )
        return self._session

    def sync(self) -> Client:
        """The sync client (built on first use)."""
        client = self._sync
        if client is not None:
            return client
        from sagestream import Client

        with self._lock:
            if self._sync is None:
                if self._given_async is not None:
                    self._sync = self._take_over(Client, self._given_async.runtime_client)
                else:
                    self._sync = Client(self._boto3_session(), **self._options)
            return self._sync

    async def for_running_loop(self) -> AsyncClient:
        """The async client of the running event loop (built in a worker thread on first use)."""
        if self._given_async is not None:
            return self._given_async
        loop = asyncio.get_running_loop()
        client = self._loops.get(loop)
        if client is None:
            client = await asyncio.to_thread(self._make_async, loop)
        return client

    def _make_async(self, loop: asyncio.AbstractEventLoop) -> AsyncClient:
        from sagestream import AsyncClient

        with self._lock:
            client = self._loops.get(loop)
            if client is not None:
                return client
            for old in [old for old in self._loops if old.is_closed()]:
                del self._loops[old]
            if self._sync is not None and self._client is self._sync:
                client = self._take_over(AsyncClient, self._sync.runtime_client)
            else:
                client = AsyncClient(self._boto3_session(), **self._options)
                # The botocore client (endpoint rules, credentials) is made here, in this worker
                # thread under the lock, not on the event loop.
                client.runtime_client  # noqa: B018
            self._loops[loop] = client
            return client
