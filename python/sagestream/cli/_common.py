"""What the AWS-calling commands share: option types, the client, notices on stderr, errors.

Nothing here imports boto3 or botocore at module level: ``sagestream COMMAND --help`` must stay
cheap, so each function imports what it needs when a command runs.
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from sagestream.exceptions import ParamValidationError, SageStreamError
from sagestream.service import Member, Operation

#: Exit status of a failed request (service, stream or transport error).
EXIT_FAILED = 1
#: Exit status of a usage or configuration error: nothing was sent.
EXIT_USAGE = 2

#: Seconds without an answer to one attempt before stderr says what is being waited for.
NOTICE_AFTER = 2.0

T = TypeVar("T")


def checked(check: Callable[[Any], T], convert: Callable[[str], Any] = str) -> Callable[[str], T]:
    """An argparse ``type=`` that applies one of the service's rules (:mod:`sagestream.service`)
    to the option.

    argparse then names the flag in the error (``argument --request-ttl-seconds: invalid
    RequestTTLSeconds 30: ...``) and exits 2, before anything is sent.
    """

    def parse(text: str) -> T:
        try:
            value = convert(text)
        except ValueError:
            kind = "an integer" if convert is int else "a number" if convert is float else "a value"
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        try:
            return check(value)
        except ParamValidationError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = getattr(check, "__name__", "value")
    return parse


#: The options of earlier releases, still taken (not shown in --help): keyword → option.
_EARLIER_FLAGS = {
    "inference_component_name": "--inference-component",
    "request_ttl_seconds": "--request-ttl",
    "invocation_timeout_seconds": "--invocation-timeout",
    "s3_output_path_extension": "--output-path-extension",
}


def add_member_options(
    group: Any, members: Iterable[Member], *, defaults: Mapping[str, str] | None = None, note: str = ""
) -> None:
    """One option per member of the operation table: ``--custom-attributes`` for the clients'
    ``custom_attributes=``, its help and its check from the member's row."""
    for member in members:
        convert = int if member.rule.type == "integer" else str
        options: dict[str, Any] = {
            "dest": member.keyword,
            "metavar": member.metavar,
            "type": checked(member.check, convert),
        }
        default = (defaults or {}).get(member.keyword)
        shown = " (default: %(default)s)" if default is not None else ""
        group.add_argument(member.flag, default=default, help=member.doc + shown + note, **options)
        earlier = _EARLIER_FLAGS.get(member.keyword)
        if earlier is not None:
            group.add_argument(earlier, help=argparse.SUPPRESS, **options)


def member_values(args: argparse.Namespace, members: Iterable[Member]) -> dict[str, Any]:
    """The clients' keywords of ``members``, as the options gave them."""
    return {m.keyword: getattr(args, m.keyword) for m in members}


def read_body(value: str, member: Member) -> bytes:
    """An argparse ``type=`` for a body option: the text itself, ``@FILE``'s bytes, or stdin's
    for ``-``, within ``member``'s limit."""
    if value == "-":
        data = sys.stdin.buffer.read()
    elif value.startswith("@"):
        try:
            with open(value[1:], "rb") as f:
                data = f.read()
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"cannot read {value[1:]!r}: {exc.strerror or exc}") from None
    else:
        data = value.encode("utf-8")
    try:
        member.check(data)
    except ParamValidationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return data


def endpoint_url(text: str) -> str:
    """An argparse ``type=`` for ``--endpoint-url``: an ``http://`` or ``https://`` URL with a host."""
    parts = urllib.parse.urlsplit(text)
    if parts.scheme in ("http", "https") and parts.hostname:
        return text
    hint = f"; did you mean http://{text}?" if "://" not in text else ""
    raise argparse.ArgumentTypeError(
        f"expected a URL with its scheme, such as http://127.0.0.1:8080 or "
        f"https://runtime.sagemaker.us-east-1.amazonaws.com, got {text!r}{hint}"
    )


def _finite(text: str) -> float:
    """``text`` as a finite float, or NaN (which every bound refuses)."""
    try:
        value = float(text)
    except ValueError:
        return float("nan")
    return value if math.isfinite(value) else float("nan")


def positive_seconds(text: str) -> float:
    """An argparse ``type=`` for a positive number of seconds."""
    value = _finite(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def non_negative(text: str) -> float:
    """An argparse ``type=`` for a number of seconds or milliseconds, 0 or more."""
    value = _finite(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number, 0 or more, got {text!r}")
    return value


def _integer(low: int, high: float, expected: str) -> Callable[[str], int]:
    """An argparse ``type=`` for an integer from ``low`` to ``high``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


#: An argparse ``type=`` for an integer, 1 or more.
positive_int = _integer(1, math.inf, "a positive integer")
#: An argparse ``type=`` for a TCP port: 1 to 65535, or 0 for any free one.
port = _integer(0, 65535, "a port, 0 to 65535")


def exit_statuses(failed: str) -> str:
    """A command's description's last sentence: its exit statuses, ``failed`` saying when it is 1."""
    return (
        f"Exit status: 0 done, 1 {failed}, 2 a usage or configuration error (nothing sent), 130 interrupted."
    )


def add_endpoint(parser: argparse.ArgumentParser, operation: Operation) -> None:
    """The ``ENDPOINT`` argument, checked by ``operation``'s EndpointName rule."""
    endpoint = operation.members["EndpointName"]
    parser.add_argument("endpoint", metavar="ENDPOINT", type=checked(endpoint.check), help=endpoint.doc)


def add_seconds(group: Any, flag: str, help: str, **more: Any) -> None:
    """An option taking a positive number of seconds."""
    group.add_argument(flag, type=positive_seconds, metavar="SECONDS", help=help, **more)


def add_non_negative(group: Any, flag: str, help: str, *, metavar: str, **more: Any) -> None:
    """An option taking a number of seconds or milliseconds, 0 or more."""
    group.add_argument(flag, type=non_negative, metavar=metavar, help=help, **more)


def add_count(group: Any, flag: str, help: str, *, metavar: str | None = "N", **more: Any) -> None:
    """An option taking an integer, 1 or more."""
    group.add_argument(flag, type=positive_int, metavar=metavar, help=help, **more)


def add_aws_options(parser: argparse.ArgumentParser) -> None:
    """``--region``, ``--profile`` and ``--endpoint-url``, as every AWS-calling command takes them."""
    group = parser.add_argument_group("AWS")
    group.add_argument("--region", help="AWS region (default: AWS_REGION, or the profile's region)")
    group.add_argument("--profile", help="AWS profile (default: AWS_PROFILE, or the default profile)")
    group.add_argument(
        "--endpoint-url",
        type=endpoint_url,
        metavar="URL",
        help="SageMaker Runtime URL, e.g. http://127.0.0.1:8080 for 'sagestream serve'",
    )


def make_client(
    args: argparse.Namespace, notices: ConnectionNotices, config: Any = None, **options: Any
) -> Any:
    """A ``sagestream.Client`` for the AWS options, with ``notices`` on every client it makes.

    The retry policy stays the one the user configured (``AWS_MAX_ATTEMPTS``, ``AWS_RETRY_MODE``,
    ``~/.aws/config``); the notices only say what it does.
    """
    import boto3

    from sagestream import Client

    session = boto3.Session(profile_name=args.profile, region_name=args.region)
    client = Client(session, endpoint_url=args.endpoint_url, config=config, observer=notices, **options)
    notices.config = client.runtime_client.meta.config
    # Clients copy the session's handlers when they are created: registered now, after the
    # runtime client (which tells `notices` of its attempts itself and keeps the request path),
    # the notices also cover any S3 client the command creates later.
    notices.register(session.events)
    return client


def with_client(command: str, args: argparse.Namespace, work: Callable[[Any], int], **options: Any) -> int:
    """Run ``work`` with the command's client (:func:`make_client` with ``options``, closed
    after), under connection notices; a failure to make the client, or of the work, is reported
    under ``command``'s name (:func:`report`)."""
    with ConnectionNotices() as notices:
        try:
            client = make_client(args, notices, **options)
        except failures() as exc:
            return report(command, exc)
        with client:
            try:
                return work(client)
            except failures() as exc:
                return report(command, exc)


class ConnectionNotices:
    """botocore event handlers saying on stderr what a request waits for and when it is retried.

    ``before-send`` (once per attempt, signed and about to go out) starts a timer: if no answer
    came after :data:`NOTICE_AFTER` seconds, stderr names the URL, the attempt and the timeouts
    (which ``request-created`` took from the attempt's context). ``needs-retry`` (after every
    attempt) stops it and, when the attempt failed with a connection error or a server error
    status and attempts remain, says so. The handlers return ``None``: they change nothing
    botocore decides. Used as a context manager, leaving it stops a pending timer.
    """

    def __init__(self) -> None:
        self._timer: threading.Timer | None = None
        self._attempt: tuple[int, int, tuple[Any, Any]] = (1, 1, (None, None))
        self._lock = threading.Lock()
        self._explained = False
        #: The runtime client's botocore config (its timeouts and retry settings).
        self.config: Any = None

    # The runtime client's attempts (sagestream.AttemptObserver) ---------------------------

    def attempt_started(self, url: str, attempt: int) -> None:
        """Start the "no answer yet" timer of an attempt of the runtime client."""
        context = {"client_config": self.config}
        timeouts = (getattr(self.config, "connect_timeout", None), getattr(self.config, "read_timeout", None))
        self._start_timer(url, attempt, _attempts(context)[1], timeouts)

    def attempt_ended(self, url: str, attempt: int, failure: str | None, retry_in: float | None) -> None:
        """Stop the timer; say so when a failed attempt is retried."""
        self._cancel()
        if failure is not None and retry_in is not None:
            context = {"client_config": self.config}
            self._retrying(url, attempt, _attempts(context)[1], failure, context)

    # botocore's events, for the S3 calls of invoke-async ----------------------------------

    def register(self, events: Any) -> None:
        """Register the handlers on a botocore event emitter."""
        events.register("request-created", self._created, unique_id="sagestream-cli-request-created")
        events.register("before-send", self._sending, unique_id="sagestream-cli-before-send")
        events.register("needs-retry", self._needs_retry, unique_id="sagestream-cli-needs-retry")

    def __enter__(self) -> ConnectionNotices:
        return self

    def __exit__(self, *exc: object) -> None:
        self._cancel()

    def _cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _created(self, request: Any, **_: Any) -> None:
        context = getattr(request, "context", None) or {}
        config = context.get("client_config")
        timeouts = (getattr(config, "connect_timeout", None), getattr(config, "read_timeout", None))
        self._attempt = (*_attempts(context), timeouts)

    def _sending(self, request: Any, **_: Any) -> None:
        attempt, limit, timeouts = self._attempt
        self._start_timer(str(request.url), attempt, limit, timeouts)

    def _start_timer(self, url: str, attempt: int, limit: int, timeouts: tuple[Any, Any]) -> None:
        timer = threading.Timer(NOTICE_AFTER, _notice_waiting, (_origin(url), attempt, limit, timeouts))
        timer.daemon = True
        self._cancel()
        with self._lock:
            self._timer = timer
        timer.start()

    def _needs_retry(
        self,
        attempts: int,
        request_dict: dict[str, Any],
        response: Any = None,
        caught_exception: BaseException | None = None,
        **_: Any,
    ) -> None:
        self._cancel()
        limit = _attempts(request_dict.get("context", {}))[1]
        if attempts >= limit:
            return  # botocore raises now; the command reports that error
        if caught_exception is not None:
            reason = str(caught_exception)
        elif response is not None and response[0].status_code in _RETRYABLE_STATUS:
            reason = f"HTTP {response[0].status_code}"
        else:
            return
        self._retrying(
            str(request_dict.get("url", "")), attempts, limit, reason, request_dict.get("context", {})
        )

    def _retrying(self, url: str, attempt: int, limit: int, reason: str, context: dict[str, Any]) -> None:
        url = _origin(url)
        lines = [f"[sagestream] attempt {attempt} of {limit} to {url} failed ({reason}); retrying\n"]
        if not self._explained:
            self._explained = True
            mode = _retry_mode(context)
            lines.append(
                f"[sagestream] retries as configured: mode {mode}, at most {limit} attempts "
                "(AWS_MAX_ATTEMPTS and AWS_RETRY_MODE, or max_attempts and retry_mode in ~/.aws/config)\n"
            )
        sys.stderr.write("".join(lines))
        sys.stderr.flush()


# Statuses both of botocore's retry modes retry whatever the error code (legacy: _retry.json's
# general_server_error, bad_gateway, service_unavailable, gateway_timeout; standard: its
# transient status codes). Throttling depends on the code and the mode: not announced.
_RETRYABLE_STATUS = frozenset({500, 502, 503, 504})


def _notice_waiting(url: str, attempt: int, limit: int, timeouts: tuple[Any, Any]) -> None:
    connect, read = (f"{t:g} s" if isinstance(t, int | float) else "unset" for t in timeouts)
    sys.stderr.write(
        f"[sagestream] no answer yet from {url} after {NOTICE_AFTER:g} s; still waiting "
        f"(attempt {attempt} of at most {limit}, connect timeout {connect}, read timeout {read})\n"
    )
    sys.stderr.flush()


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else url


def _retry_mode(context: dict[str, Any]) -> str:
    config = context.get("client_config")
    retries = getattr(config, "retries", None) or {}
    return str(retries.get("mode", "legacy"))


def _attempts(context: dict[str, Any]) -> tuple[int, int]:
    """(this attempt, the most attempts) from botocore's request context."""
    attempt = int((context.get("retries") or {}).get("attempt", 1))
    config = context.get("client_config")
    retries = getattr(config, "retries", None) or {}
    limit = retries.get("total_max_attempts")
    if limit is None:
        # botocore's defaults: 5 attempts in legacy mode (its _retry.json), 3 in standard/adaptive.
        limit = 5 if retries.get("mode", "legacy") == "legacy" else 3
    return attempt, int(limit)


# --- errors ----------------------------------------------------------------------------------

_REGION_HINT = (
    "no AWS region: pass --region REGION, set AWS_REGION (or AWS_DEFAULT_REGION), "
    "or set region in the profile's section of ~/.aws/config (AWS_CONFIG_FILE)"
)
_CREDENTIALS_HINT = (
    "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or pass "
    "--profile NAME (or set AWS_PROFILE) naming a profile of ~/.aws/credentials or ~/.aws/config "
    "('aws configure', 'aws sso login')"
)


def missing_extra(command: str, exc: ImportError) -> int:
    """Say what ``command`` needs installed (importing it failed); returns the usage status."""
    from sagestream.extras import SERVE_INSTALL

    message = str(exc) if SERVE_INSTALL in str(exc) else f"needs the serve extra ({exc}): {SERVE_INSTALL}"
    sys.stderr.write(f"sagestream {command}: {message}\n")
    return EXIT_USAGE


def report(command: str, exc: BaseException) -> int:
    """Write one line about ``exc`` to stderr and return the exit status it calls for.

    2 for what the user must set or fix before anything can be sent (an invalid parameter, no
    region, no credentials, an unknown profile); 1 for a request that failed. Commands catch
    only :func:`failures`: anything else is a bug and keeps its traceback.
    """
    prefix = f"sagestream {command}: "
    if isinstance(exc, ParamValidationError):
        sys.stderr.write(f"{prefix}{exc}\n")
        return EXIT_USAGE
    hint = _configuration_hint(exc)
    if hint is not None:
        sys.stderr.write(f"{prefix}{hint}\n")
        return EXIT_USAGE
    sys.stderr.write(f"{prefix}{type(exc).__name__}: {exc}\n")
    return EXIT_FAILED


def _configuration_hint(exc: BaseException) -> str | None:
    """What to set, when ``exc`` (or what it was raised from) is a missing piece of AWS setup."""
    import botocore.exceptions as bce

    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, bce.NoRegionError):
            return _REGION_HINT
        if isinstance(cause, bce.NoCredentialsError):
            return _CREDENTIALS_HINT
        if isinstance(cause, bce.PartialCredentialsError):
            return f"{_CREDENTIALS_HINT} ({cause})"
        if isinstance(cause, bce.ProfileNotFound):
            return (
                f"{cause}: profiles are read from ~/.aws/config and ~/.aws/credentials "
                "(AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE); 'aws configure list-profiles' lists them"
            )
        cause = cause.__cause__
    return None


def failures() -> tuple[type[BaseException], ...]:
    """The exception classes :func:`report` turns into a message and an exit status."""
    import botocore.exceptions as bce

    return (SageStreamError, bce.ClientError, bce.BotoCoreError)
