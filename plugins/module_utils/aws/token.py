# -*- coding: utf-8 -*-
# Copyright: contributors to gpu_slicing.eks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The EKS bearer token, minted as ``aws eks get-token`` does (no AWS CLI, no exec plugin).

The token is a presigned STS ``GetCallerIdentity`` URL with the ``x-k8s-aws-id`` header
signed in; :class:`TokenSource` re-mints it before it expires and plugs into the kubernetes
client through ``Configuration.refresh_api_key_hook``. A token is never part of a message,
a ``repr`` or a log line.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import threading

from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws.session import (
    AwsError,
    as_utc,
    isoformat_z,
    require_boto3,
    translate_error,
    utcnow,
)

try:
    import botocore.auth
except ImportError:  # pragma: no cover - exercised only without boto3 (require_boto3 says so)
    pass

TOKEN_PREFIX = "k8s-aws-v1."
K8S_AWS_ID_HEADER = "x-k8s-aws-id"
#: Seconds the presigned URL itself carries (X-Amz-Expires), as `aws eks get-token` does.
PRESIGN_EXPIRES_SECONDS = 60
#: EKS accepts a token for 15 minutes after signing; like `aws eks get-token` we report
#: 14 minutes so that callers refresh before the server-side limit.
TOKEN_VALIDITY = datetime.timedelta(minutes=14)
#: TokenSource re-mints a token this long before ``expires_at``.
DEFAULT_REFRESH_MARGIN = datetime.timedelta(seconds=60)

_SIGNING_CLOCK_LOCK = threading.Lock()


@contextlib.contextmanager
def _signing_clock(now):
    """Make botocore's SigV4 signer use ``now`` (only when a caller pins the clock)."""
    if now is None:
        yield
        return
    naive = as_utc(now).replace(tzinfo=None)

    def fixed(remove_tzinfo=True):
        return naive if remove_tzinfo else naive.replace(tzinfo=datetime.timezone.utc)

    with _SIGNING_CLOCK_LOCK:
        original = botocore.auth.get_current_datetime
        botocore.auth.get_current_datetime = fixed
        try:
            yield
        finally:
            botocore.auth.get_current_datetime = original


def _retrieve_k8s_aws_id(params, context, **kwargs):
    if K8S_AWS_ID_HEADER in params:
        context[K8S_AWS_ID_HEADER] = params.pop(K8S_AWS_ID_HEADER)


def _inject_k8s_aws_id_header(request, **kwargs):
    if K8S_AWS_ID_HEADER in request.context:
        request.headers[K8S_AWS_ID_HEADER] = request.context[K8S_AWS_ID_HEADER]


def _sts_client_for_token(session):
    client = session.client("sts", region_name=session.region_name)
    client.meta.events.register("provide-client-params.sts.GetCallerIdentity", _retrieve_k8s_aws_id)
    client.meta.events.register("before-sign.sts.GetCallerIdentity", _inject_k8s_aws_id_header)
    return client


def eks_token(session, cluster_name, now=None):
    """Mint an EKS bearer token: ``(token, expires_at)``.

    The token is ``k8s-aws-v1.`` + base64url (no ``=`` padding) of a presigned GET URL for
    STS ``GetCallerIdentity`` (``X-Amz-Expires=60``) with the header ``x-k8s-aws-id:
    <cluster_name>`` among the signed headers. ``expires_at`` (aware UTC) is 14 minutes after
    signing. ``now`` pins the signing time (deterministic tokens in tests); by default the
    real clock is used.
    """
    require_boto3()
    if not cluster_name:
        raise AwsError("eks_cluster_name is required to mint an EKS token", kind="invalid",
                       fix="set eks_cluster_name to the EKS cluster's name")
    signed_at = as_utc(now) if now is not None else utcnow()
    try:
        client = _sts_client_for_token(session)
        with _signing_clock(now):
            url = client.generate_presigned_url(
                "get_caller_identity",
                Params={K8S_AWS_ID_HEADER: cluster_name},
                ExpiresIn=PRESIGN_EXPIRES_SECONDS,
                HttpMethod="GET",
            )
    except Exception as exc:  # pylint: disable=broad-except
        raise translate_error(exc, "signing the EKS token", region=session.region_name) from None
    encoded = base64.urlsafe_b64encode(url.encode("utf-8")).decode("ascii").rstrip("=")
    return TOKEN_PREFIX + encoded, signed_at + TOKEN_VALIDITY


def decode_token(token):
    """The presigned URL inside a token (for diagnostics and tests)."""
    if not token.startswith(TOKEN_PREFIX):
        raise ValueError("not an EKS token (missing %s prefix)" % TOKEN_PREFIX)
    body = token[len(TOKEN_PREFIX):]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("utf-8")


class TokenSource:
    """A refreshing EKS token.

    ``get()`` returns a token that is valid for at least ``refresh_margin`` more; it re-mints
    when the current one is within the margin of its ``expires_at``. ``clock`` (a callable
    returning an aware UTC datetime) is injectable for tests; when given, tokens are also
    signed at that time.

    The kubernetes client picks up refreshed tokens through :meth:`refresh_api_key_hook`
    (set as ``Configuration.refresh_api_key_hook``; see :func:`aws.eks.kube_client_config`).
    The token is never part of ``repr()``.
    """

    def __init__(self, session, cluster_name, clock=None, refresh_margin=DEFAULT_REFRESH_MARGIN,
                 minter=None):
        self._session = session
        self.cluster_name = cluster_name
        self._clock = clock
        if not isinstance(refresh_margin, datetime.timedelta):
            refresh_margin = datetime.timedelta(seconds=refresh_margin)
        self.refresh_margin = refresh_margin
        self._minter = minter or eks_token
        self._token = None
        self.expires_at = None
        self.mint_count = 0
        self._lock = threading.Lock()

    def _now(self):
        return as_utc(self._clock()) if self._clock is not None else utcnow()

    def needs_refresh(self, now=None):
        now = self._now() if now is None else as_utc(now)
        return self._token is None or now >= self.expires_at - self.refresh_margin

    def _mint(self, now):
        pinned = now if self._clock is not None else None
        self._token, self.expires_at = self._minter(self._session, self.cluster_name, now=pinned)
        self.mint_count += 1
        return self._token

    def get(self):
        with self._lock:
            now = self._now()
            if self.needs_refresh(now):
                self._mint(now)
            return self._token

    def mint(self):
        """A token signed now, whatever the cached one's age: for a process (helm) that keeps
        the token it starts with for its whole run. The kubernetes client then reuses it."""
        with self._lock:
            return self._mint(self._now())

    def bearer(self):
        return "Bearer " + self.get()

    def refresh_api_key_hook(self, configuration):
        """For ``kubernetes.client.Configuration.refresh_api_key_hook``."""
        configuration.api_key["authorization"] = self.bearer()
        # A prefix would be prepended again by get_api_key_with_prefix.
        configuration.api_key_prefix.pop("authorization", None)

    def __deepcopy__(self, memo):
        # kubernetes.client.Configuration deep-copies its attributes (the hook included);
        # every copy must share this one token cache and session.
        return self

    def __repr__(self):
        return "TokenSource(cluster_name=%r, expires_at=%s, token=<redacted>)" % (
            self.cluster_name, isoformat_z(self.expires_at) if self.expires_at else None)

    __str__ = __repr__
