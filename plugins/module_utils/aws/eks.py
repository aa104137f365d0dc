# -*- coding: utf-8 -*-
# Copyright: contributors to gpu_slicing.eks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ONE place in gpu_slicing.eks that talks to AWS.

What lives here:

* sessions (static keys, profile, environment, optional assumed role),
* the EKS bearer token: a presigned STS ``GetCallerIdentity`` URL with the
  ``x-k8s-aws-id`` header signed in, exactly as ``aws eks get-token`` builds it
  (no AWS CLI, no exec plugin),
* :class:`TokenSource`, which re-mints the token before it expires and plugs into the
  kubernetes client through ``Configuration.refresh_api_key_hook``,
* cluster discovery (``eks:DescribeCluster``) with errors that say what to fix,
* GPU facts from ``ec2:DescribeInstanceTypes`` and on-demand prices from the Pricing API
  (the response parsers are pure functions and are tested without AWS).

boto3/botocore are imported defensively: ``HAS_BOTO3`` / ``BOTO3_IMPORT_ERROR`` let modules
call ``missing_required_lib('boto3')``. Nothing in this file ever puts a token, a secret key
or a session token into an exception message, a ``repr`` or a log line.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import datetime
import json
import os
import tempfile
import threading
import traceback

from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws import options as _eks_options
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import GpuSlicingError

try:
    import boto3
    import botocore
    import botocore.auth
    import botocore.credentials
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ProfileNotFound,
    )

    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - exercised only without boto3
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = traceback.format_exc()

    class BotoCoreError(Exception):  # type: ignore[no-redef]
        pass

    ClientError = EndpointConnectionError = NoCredentialsError = BotoCoreError  # type: ignore
    NoRegionError = PartialCredentialsError = ProfileNotFound = BotoCoreError  # type: ignore


TOKEN_PREFIX = "k8s-aws-v1."
K8S_AWS_ID_HEADER = "x-k8s-aws-id"
#: Seconds the presigned URL itself carries (X-Amz-Expires), as `aws eks get-token` does.
PRESIGN_EXPIRES_SECONDS = 60
#: EKS accepts a token for 15 minutes after signing; like `aws eks get-token` we report
#: 14 minutes so that callers refresh before the server-side limit.
TOKEN_VALIDITY = datetime.timedelta(minutes=14)
#: TokenSource re-mints a token this long before ``expires_at``.
DEFAULT_REFRESH_MARGIN = datetime.timedelta(seconds=60)
DEFAULT_ROLE_SESSION_NAME = "gpu-slicing-eks"

CREDENTIAL_HINT = (
    "Give AWS credentials: the options access_key and secret_key (plus session_token "
    "for temporary credentials), or the environment variables AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY (plus AWS_SESSION_TOKEN or AWS_SECURITY_TOKEN, which AWX's AWS "
    "credential sets), or aws_profile / AWS_PROFILE, or an instance/pod role"
)
REGION_HINT = "Set the option region or the environment variable AWS_REGION (or AWS_DEFAULT_REGION)"
NO_CONNECTION_HINT = (
    "No Kubernetes connection was given. Set eks_cluster_name and region (with AWS credentials) "
    "to reach an EKS cluster, or kubernetes.core's host with api_key and ca_cert (environment "
    "K8S_AUTH_HOST, K8S_AUTH_API_KEY, K8S_AUTH_SSL_CA_CERT, as AWX's bearer-token credential sets), "
    "or kubeconfig/context (K8S_AUTH_KUBECONFIG). The in-cluster service account is never used "
    "implicitly: it would target the cluster the job runs in (for AWX, AWX's own cluster)"
)

# Error codes that mean "the credentials are wrong or not allowed".
_AUTH_ERROR_CODES = frozenset(
    [
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "AuthFailure",
        "InvalidAccessKeyId",
    ]
)


class AwsError(GpuSlicingError):
    """An AWS/EKS problem with a message that says what to fix.

    ``kind`` is a short machine-readable category: ``no_credentials``, ``no_region``,
    ``access_denied``, ``not_found``, ``not_active``, ``unreachable``, ``no_connection``,
    ``invalid``, ``missing_library`` or ``aws``.
    """

    kind = "aws"

    def __init__(self, message, kind="aws", fix=None):
        self.fix = fix
        text = message if not fix else "%s. Fix: %s" % (message.rstrip("."), fix)
        super().__init__(text, kind=kind)


def _require_boto3():
    if not HAS_BOTO3:
        raise AwsError("boto3 and botocore are required to talk to AWS", kind="missing_library",
                       fix="install boto3 (pip install 'boto3>=1.35') in the Python that runs the module")


# ---------------------------------------------------------------------------
# time helpers
# ---------------------------------------------------------------------------
def utcnow():
    """Timezone-aware current UTC time."""
    return datetime.datetime.now(datetime.timezone.utc)


def _aware(value):
    if value.tzinfo is None:
        return value.replace(tzinfo=datetime.timezone.utc)
    return value.astimezone(datetime.timezone.utc)


def isoformat_z(value):
    """``2026-11-24T10:00:00Z`` (the format of ExecCredential's expirationTimestamp)."""
    return _aware(value).strftime("%Y-%m-%dT%H:%M:%SZ")


_SIGNING_CLOCK_LOCK = threading.Lock()


@contextlib.contextmanager
def _signing_clock(now):
    """Make botocore's SigV4 signer use ``now`` (only when a caller pins the clock)."""
    if now is None:
        yield
        return
    naive = _aware(now).replace(tzinfo=None)

    def fixed(remove_tzinfo=True):
        return naive if remove_tzinfo else naive.replace(tzinfo=datetime.timezone.utc)

    with _SIGNING_CLOCK_LOCK:
        original = botocore.auth.get_current_datetime
        botocore.auth.get_current_datetime = fixed
        try:
            yield
        finally:
            botocore.auth.get_current_datetime = original


# ---------------------------------------------------------------------------
# sessions and errors
# ---------------------------------------------------------------------------
def translate_error(exc, action, resource=None, region=None):
    """Map a botocore exception to an :class:`AwsError` with a fix. Never echoes secrets."""
    where = " in region %s" % region if region else ""
    if isinstance(exc, AwsError):
        return exc
    if isinstance(exc, NoCredentialsError):
        return AwsError("No AWS credentials were found for %s" % action, kind="no_credentials", fix=CREDENTIAL_HINT)
    if isinstance(exc, PartialCredentialsError):
        return AwsError("Incomplete AWS credentials for %s (an access key without its secret key, or the reverse)"
                        % action, kind="no_credentials", fix=CREDENTIAL_HINT)
    if isinstance(exc, NoRegionError):
        return AwsError("No AWS region is set for %s" % action, kind="no_region", fix=REGION_HINT)
    if isinstance(exc, ProfileNotFound):
        return AwsError("The AWS profile given for %s does not exist" % action, kind="no_credentials",
                        fix="set aws_profile / AWS_PROFILE to a profile in ~/.aws/config, or give keys instead")
    if isinstance(exc, EndpointConnectionError):
        return AwsError("Cannot reach the AWS endpoint for %s%s" % (action, where), kind="unreachable",
                        fix="check network access to AWS (proxy, VPC endpoints) and the region")
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {}) if hasattr(exc, "response") else {}
        code = error.get("Code", "Unknown")
        aws_message = error.get("Message", "")
        if code == "ResourceNotFoundException" and resource:
            return AwsError("EKS cluster %r was not found%s" % (resource, where), kind="not_found",
                            fix="check eks_cluster_name and region (aws eks list-clusters shows the names)")
        if code in _AUTH_ERROR_CODES:
            return AwsError("AWS refused %s%s (%s: %s)" % (action, where, code, aws_message), kind="access_denied",
                            fix="check the credentials are valid and not expired, and that the identity (or "
                                "aws_role_arn) is allowed this call")
        return AwsError("AWS error during %s%s (%s: %s)" % (action, where, code, aws_message), kind="aws")
    if isinstance(exc, BotoCoreError):
        return AwsError("AWS client error during %s%s: %s" % (action, where, exc), kind="aws")
    return AwsError("Unexpected error during %s%s: %s" % (action, where, exc), kind="aws")


def make_session(region=None, profile=None, access_key=None, secret_key=None, session_token=None,
                 role_arn=None, role_session_name=DEFAULT_ROLE_SESSION_NAME, endpoint_url=None):
    """A boto3 Session from explicit values (falling back to boto3's own chain).

    With ``role_arn`` the base identity assumes that role (session name ``gpu-slicing-eks``)
    and the returned session carries the temporary credentials. With ``endpoint_url`` every
    client of the session (STS included) talks to that URL, as amazon.aws's option does.
    """
    _require_boto3()
    if bool(access_key) != bool(secret_key):
        raise AwsError("access_key and secret_key must be given together", kind="no_credentials",
                       fix=CREDENTIAL_HINT)
    kwargs = {}
    if region:
        kwargs["region_name"] = region
    if profile and not access_key:
        kwargs["profile_name"] = profile
    if access_key:
        kwargs.update(aws_access_key_id=access_key, aws_secret_access_key=secret_key)
        if session_token:
            kwargs["aws_session_token"] = session_token
    try:
        session = boto3.session.Session(**kwargs)
    except BotoCoreError as exc:
        raise translate_error(exc, "creating the AWS session") from None
    if not session.region_name:
        raise AwsError("No AWS region is set", kind="no_region", fix=REGION_HINT)
    if session.get_credentials() is None:
        raise AwsError("No AWS credentials were found", kind="no_credentials", fix=CREDENTIAL_HINT)
    _use_endpoint(session, endpoint_url)
    if role_arn:
        session = _use_endpoint(assume_role_session(session, role_arn, role_session_name), endpoint_url)
    return session


def _use_endpoint(session, endpoint_url):
    """Make every client of ``session`` use ``endpoint_url`` (unless a caller names another)."""
    if endpoint_url:
        make_client = session.client

        def client(*args, **kwargs):
            kwargs.setdefault("endpoint_url", endpoint_url)
            return make_client(*args, **kwargs)

        session.client = client
    return session


def assume_role_session(session, role_arn, role_session_name=DEFAULT_ROLE_SESSION_NAME):
    """A new session that acts as ``role_arn``, with credentials botocore renews.

    One AssumeRole answer lasts an hour; a long run (waits, retries) must not sign with
    expired keys, so the session gets botocore's refreshing assume-role credentials: AssumeRole
    is called again when the current answer is within botocore's refresh window of its
    expiry. The first call happens here, so a refused role fails at once.
    """
    _require_boto3()
    import botocore.credentials
    import botocore.session

    fetcher = botocore.credentials.AssumeRoleCredentialFetcher(
        client_creator=session.client,
        source_credentials=session.get_credentials(),
        role_arn=role_arn,
        extra_args={"RoleSessionName": role_session_name},
    )
    credentials = botocore.credentials.DeferredRefreshableCredentials(
        refresh_using=fetcher.fetch_credentials, method="assume-role")
    try:
        credentials.get_frozen_credentials()
    except Exception as exc:  # pylint: disable=broad-except
        err = translate_error(exc, "assuming role %s" % role_arn, region=session.region_name)
        raise err from None
    core = botocore.session.get_session()
    core.register_component("credential_provider",
                            botocore.credentials.CredentialResolver(providers=[_AssumedRole(credentials)]))
    return boto3.session.Session(botocore_session=core, region_name=session.region_name)


class _AssumedRole(botocore.credentials.CredentialProvider if HAS_BOTO3 else object):
    """Hands botocore's credential chain the one refreshing assume-role credentials object."""

    METHOD = "assume-role"

    def __init__(self, credentials):
        super().__init__()
        self._credentials = credentials

    def load(self):
        return self._credentials


def session_from_params(params):
    """Session from the shared module options (see :func:`eks_connection_argument_spec`)."""
    return make_session(
        region=params.get("region"),
        profile=params.get("aws_profile"),
        access_key=params.get("access_key"),
        secret_key=params.get("secret_key"),
        session_token=params.get("session_token"),
        role_arn=params.get("aws_role_arn"),
        endpoint_url=params.get("endpoint_url"),
    )


# ---------------------------------------------------------------------------
# token
# ---------------------------------------------------------------------------
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
    _require_boto3()
    if not cluster_name:
        raise AwsError("eks_cluster_name is required to mint an EKS token", kind="invalid",
                       fix="set eks_cluster_name to the EKS cluster's name")
    signed_at = _aware(now) if now is not None else utcnow()
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
    (set as ``Configuration.refresh_api_key_hook``; see :func:`kube_client_config`).
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
        return _aware(self._clock()) if self._clock is not None else utcnow()

    def needs_refresh(self, now=None):
        now = self._now() if now is None else _aware(now)
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


# ---------------------------------------------------------------------------
# cluster discovery
# ---------------------------------------------------------------------------
def describe_cluster(session, name):
    """``eks:DescribeCluster`` reduced to what a client needs.

    Returns ``{name, arn, region, endpoint, certificate_authority_data, status, version,
    platform_version}``. Raises :class:`AwsError` (kinds ``not_found``, ``not_active``,
    ``access_denied``, ``no_credentials``, ``no_region``, ``unreachable``).
    """
    _require_boto3()
    if not name:
        raise AwsError("eks_cluster_name is empty", kind="invalid", fix="set eks_cluster_name")
    region = session.region_name
    try:
        cluster = session.client("eks", region_name=region).describe_cluster(name=name)["cluster"]
    except Exception as exc:  # pylint: disable=broad-except
        raise translate_error(exc, "describing EKS cluster %r" % name, resource=name, region=region) from None
    status = cluster.get("status", "UNKNOWN")
    info = {
        "name": cluster.get("name", name),
        "arn": cluster.get("arn"),
        "region": region,
        "endpoint": cluster.get("endpoint"),
        "certificate_authority_data": (cluster.get("certificateAuthority") or {}).get("data"),
        "status": status,
        "version": cluster.get("version"),
        "platform_version": cluster.get("platformVersion"),
    }
    if status != "ACTIVE":
        raise AwsError("EKS cluster %r in %s is %s, not ACTIVE" % (name, region, status), kind="not_active",
                       fix="wait until the cluster is ACTIVE (aws eks wait cluster-active) and run again")
    if not info["endpoint"] or not info["certificate_authority_data"]:
        raise AwsError("EKS cluster %r has no endpoint or certificate authority yet" % name, kind="not_active",
                       fix="wait until the cluster is ACTIVE and run again")
    return info


# ---------------------------------------------------------------------------
# kubernetes client configuration
# ---------------------------------------------------------------------------
_TEMP_FILES = []


def _cleanup_temp_files():
    while _TEMP_FILES:
        path = _TEMP_FILES.pop()
        try:
            os.unlink(path)
        except OSError:
            pass


atexit.register(_cleanup_temp_files)


def write_ca_file(ca_data_b64, directory=None):
    """Decode the cluster CA (base64 PEM, as EKS returns it) into a 0600 temp file.

    The file is removed when the Python process exits. Returns its path.
    """
    try:
        pem = base64.b64decode(ca_data_b64, validate=False)
    except (ValueError, TypeError) as exc:
        raise AwsError("The cluster's certificate authority data is not base64 (%s)" % exc, kind="invalid") from None
    fd, path = tempfile.mkstemp(prefix="eks-ca-", suffix=".crt", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, pem)
    finally:
        os.close(fd)
    _TEMP_FILES.append(path)
    return path


def kube_client_config(cluster_info, token_source, ca_file_dir=None):
    """A ``kubernetes.client.Configuration`` for an EKS cluster.

    ``host`` is the cluster endpoint, ``ssl_ca_cert`` a 0600 temp file with the decoded CA,
    ``api_key['authorization'] = 'Bearer <token>'`` and ``refresh_api_key_hook`` re-mints
    through ``token_source`` whenever the client reads the key (every request).
    Raises :class:`AwsError` (kind ``no_connection``) when nothing to connect to is given:
    there is no fallback to an in-cluster service account.
    """
    if not cluster_info or not cluster_info.get("endpoint"):
        raise AwsError("No EKS cluster endpoint to connect to", kind="no_connection", fix=NO_CONNECTION_HINT)
    if token_source is None:
        raise AwsError("No EKS token source for cluster %r" % cluster_info.get("name"), kind="no_connection",
                       fix=NO_CONNECTION_HINT)
    try:
        from kubernetes.client import Configuration
    except ImportError:
        raise AwsError("the kubernetes Python client is required", kind="missing_library",
                       fix="install kubernetes (pip install 'kubernetes>=31')") from None
    config = Configuration()
    config.host = cluster_info["endpoint"]
    config.verify_ssl = True
    config.ssl_ca_cert = write_ca_file(cluster_info["certificate_authority_data"], ca_file_dir)
    config.api_key = {"authorization": token_source.bearer()}
    config.refresh_api_key_hook = token_source.refresh_api_key_hook
    # helm runs as its own process and needs a token minted per command (kube.helm_token).
    config.eks_token_source = token_source
    return config


def k8s_auth_params(cluster_info, token_source, ca_file_dir=None):
    """kubernetes.core-style auth options (``host``, ``api_key``, ``ca_cert``, ``validate_certs``).

    For code that builds its client through kubernetes.core's ``get_api_client``; the
    ``api_key`` is a token valid now (call again to refresh).
    """
    if not cluster_info or not cluster_info.get("endpoint"):
        raise AwsError("No EKS cluster endpoint to connect to", kind="no_connection", fix=NO_CONNECTION_HINT)
    return {
        "host": cluster_info["endpoint"],
        "api_key": token_source.get(),
        "ca_cert": write_ca_file(cluster_info["certificate_authority_data"], ca_file_dir),
        "validate_certs": True,
    }


class EKSConnection:
    """Everything resolved from the shared options: session, cluster facts, token source."""

    def __init__(self, session, cluster_info, token_source):
        self.session = session
        self.cluster_info = cluster_info
        self.token_source = token_source

    def kube_client_config(self, ca_file_dir=None):
        return kube_client_config(self.cluster_info, self.token_source, ca_file_dir)

    def k8s_auth_params(self, ca_file_dir=None):
        return k8s_auth_params(self.cluster_info, self.token_source, ca_file_dir)

    def __repr__(self):
        return "EKSConnection(cluster=%r, endpoint=%r, %r)" % (
            self.cluster_info.get("name"), self.cluster_info.get("endpoint"), self.token_source)


def connect(params, clock=None):
    """Resolve the shared options into an :class:`EKSConnection` (raises :class:`AwsError`)."""
    name = params.get("eks_cluster_name")
    if not name:
        raise AwsError("eks_cluster_name is not set", kind="no_connection", fix=NO_CONNECTION_HINT)
    session = session_from_params(params)
    info = describe_cluster(session, name)
    return EKSConnection(session, info, TokenSource(session, name, clock=clock))


_K8S_ENV = ("K8S_AUTH_HOST", "K8S_AUTH_KUBECONFIG", "K8S_AUTH_CONTEXT")


def connection_mode(params, environ=None):
    """Which connection the options ask for: ``eks``, ``kubernetes`` or raise.

    ``eks`` when ``eks_cluster_name`` is set; ``kubernetes`` when any of kubernetes.core's
    ``host``/``kubeconfig``/``context`` options (or their ``K8S_AUTH_*`` variables) is set.
    Otherwise raises :class:`AwsError` (kind ``no_connection``) naming what to set: there is
    no silent in-cluster fallback. A default ``~/.kube/config`` counts only when
    ``allow_default_kubeconfig`` is true in params.
    """
    environ = os.environ if environ is None else environ
    if params.get("eks_cluster_name"):
        return "eks"
    if any(params.get(k) for k in ("host", "kubeconfig", "context")) or any(environ.get(k) for k in _K8S_ENV):
        return "kubernetes"
    if params.get("allow_default_kubeconfig") and os.path.exists(os.path.expanduser("~/.kube/config")):
        return "kubernetes"
    raise AwsError("No Kubernetes connection was given", kind="no_connection", fix=NO_CONNECTION_HINT)


# ---------------------------------------------------------------------------
# shared module options (mirrors plugins/doc_fragments/eks_connection.py)
# ---------------------------------------------------------------------------
# The options live in eks_options.py (so declaring them imports no boto3); eks.py re-exports them.
EKS_CONNECTION_ARG_SPEC = _eks_options.EKS_CONNECTION_ARG_SPEC
eks_connection_argument_spec = _eks_options.eks_connection_argument_spec


def kube_configuration_from_params(params, clock=None):
    """A refreshing ``kubernetes.client.Configuration`` from the shared options.

    Describes the cluster, mints the token and wires ``refresh_api_key_hook``; raises
    :class:`AwsError` with what to set when something is missing or refused.
    """
    return connect(params, clock=clock).kube_client_config()


def aws_requested(params):
    """True when the options name a cluster, a role, a profile or keys."""
    return any(params.get(k) for k in ("eks_cluster_name", "aws_role_arn", "aws_profile", "access_key"))


# ---------------------------------------------------------------------------
# SSM public parameters (the AMI an alias resolves to)
# ---------------------------------------------------------------------------
def ssm_parameter_value(session, name):
    """``ssm:GetParameter`` of ``name`` in the session's region: its value, or None when AWS
    has no such parameter (raises :class:`AwsError` for anything else)."""
    _require_boto3()
    try:
        return session.client("ssm", region_name=session.region_name).get_parameter(Name=name)["Parameter"]["Value"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
            return None
        raise translate_error(exc, "reading SSM parameter %s (ssm:GetParameter)" % name,
                              region=session.region_name) from None
    except Exception as exc:  # pylint: disable=broad-except
        raise translate_error(exc, "reading SSM parameter %s (ssm:GetParameter)" % name,
                              region=session.region_name) from None


# ---------------------------------------------------------------------------
# EC2 instance types
# ---------------------------------------------------------------------------
def _table():
    from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import instance_types as table

    return table


def instance_facts_dict(itype, source):
    """A ``GpuInstanceType`` (instance_types.py) as the dict the modules return."""
    facts = itype.to_dict()
    facts.update(
        instance_type=itype.name,
        total_gpu_memory_mib=itype.total_gpu_memory_mib,
        gpu_memory=itype.gpu_memory,
        karpenter_labels=itype.karpenter_labels(),
        source=source,
    )
    return facts


def parse_instance_type(entry):
    """One ``DescribeInstanceTypes`` ``InstanceTypes[]`` entry -> GPU facts dict (pure).

    Same keys as :func:`instance_facts_dict` minus price/compute capability (EC2 does not
    report them); ``gpu_count`` 0 for non-GPU types. ``gpu_memory_mib`` is per GPU (like
    Karpenter's ``instance-gpu-memory`` label).
    """
    gpu_info = entry.get("GpuInfo") or {}
    gpus = gpu_info.get("Gpus") or []
    count = sum(int(g.get("Count", 0)) for g in gpus)
    first = gpus[0] if gpus else {}
    per_gpu = int((first.get("MemoryInfo") or {}).get("SizeInMiB", 0))
    name = entry.get("InstanceType")
    return {
        "name": name,
        "instance_type": name,
        "family": name.split(".", 1)[0] if name else None,
        "gpu_count": count,
        "gpu_name": (first.get("Name") or "").lower() or None,
        "gpu_manufacturer": (first.get("Manufacturer") or "").lower() or None,
        "gpu_memory_mib": per_gpu,
        "gpu_memory": "%dMi" % per_gpu if per_gpu else None,
        "total_gpu_memory_mib": int(gpu_info.get("TotalGpuMemoryInMiB", per_gpu * count)),
        "vcpu": int((entry.get("VCpuInfo") or {}).get("DefaultVCpus", 0)),
        "memory_mib": int((entry.get("MemoryInfo") or {}).get("SizeInMiB", 0)),
        "price_per_hour": None,
        "compute_capability": None,
        "source": "aws",
    }


def parse_describe_instance_types(pages):
    """Pages (or one response) of ``DescribeInstanceTypes`` -> ``{type: facts}`` (pure).

    GPU types are merged with the shipped table (``instance_types.merge_describe_instance_types``:
    EC2's figures win, the table adds price and compute capability); non-GPU types come back
    with ``gpu_count`` 0.
    """
    if isinstance(pages, dict):
        pages = [pages]
    raw = {}
    for page in pages:
        for entry in page.get("InstanceTypes", []):
            parsed = parse_instance_type(entry)
            raw[parsed["name"]] = parsed
    merged = _table().merge_describe_instance_types(list(pages))
    facts = {}
    for name, parsed in raw.items():
        if parsed["gpu_count"] and name in merged:
            facts[name] = instance_facts_dict(merged[name], "aws")
        else:
            facts[name] = parsed
    return facts


def describe_instance_types_pages(session, instance_types):
    """Raw ``DescribeInstanceTypes`` pages for the given types (paginated, 100 names per call)."""
    _require_boto3()
    names = sorted(set(instance_types))
    pages = []
    try:
        client = session.client("ec2", region_name=session.region_name)
        paginator = client.get_paginator("describe_instance_types")
        for start in range(0, len(names), 100):
            for page in paginator.paginate(InstanceTypes=names[start:start + 100]):
                pages.append(page)
    except Exception as exc:  # pylint: disable=broad-except
        raise translate_error(exc, "describing EC2 instance types", region=session.region_name) from None
    return pages


def gpu_instance_facts(session, instance_types):
    """GPU facts per instance type from ``ec2:DescribeInstanceTypes`` (paginated).

    Returns ``{instance_type: facts}`` (see :func:`parse_describe_instance_types`). Types that
    EC2 does not know in the session's region raise :class:`AwsError` (kind ``invalid``).
    """
    pages = describe_instance_types_pages(session, instance_types)
    facts = parse_describe_instance_types(pages)
    missing = sorted(set(instance_types) - set(facts))
    if missing:
        raise AwsError("EC2 does not know the instance types %s in %s" % (", ".join(missing), session.region_name),
                       kind="invalid", fix="check the names (e.g. g5.xlarge) and that they exist in the region")
    return {name: facts[name] for name in instance_types}


def offline_instance_facts(instance_types=None):
    """Facts from the shipped table (``instance_types.py``); unknown names raise its error."""
    table = _table()
    names = instance_types if instance_types else table.known_instance_types()
    return {name: instance_facts_dict(table.lookup(name), "offline") for name in names}


#: AwsError kinds after which ``source: auto`` falls back to the offline table.
FALLBACK_KINDS = frozenset(["no_credentials", "no_region", "unreachable", "missing_library", "access_denied"])


def resolve_instance_facts(params, instance_types, source="auto", session_factory=None):
    """``(facts, source_used, warnings)`` for the modules.

    ``source``: ``aws`` (DescribeInstanceTypes, errors fail), ``offline`` (shipped table) or
    ``auto`` (AWS when a region is known, else the table; on missing credentials, no region,
    an unreachable endpoint or access denied it falls back to the table with a warning).
    """
    session_factory = session_factory or session_from_params
    warnings = []
    if source == "offline":
        return offline_instance_facts(instance_types), "offline", warnings
    if source == "auto" and not (params.get("region") or aws_requested(params)):
        return offline_instance_facts(instance_types), "offline", warnings
    names = instance_types or _table().known_instance_types()
    try:
        session = session_factory(params)
        return gpu_instance_facts(session, names), "aws", warnings
    except AwsError as exc:
        if source == "aws" or exc.kind not in FALLBACK_KINDS:
            raise
        warnings.append("AWS not used for instance facts (%s); using the shipped table" % exc)
        return offline_instance_facts(instance_types), "offline", warnings


# ---------------------------------------------------------------------------
# Pricing API
# ---------------------------------------------------------------------------
#: The Pricing API answers only in a few regions; us-east-1 serves all of them.
PRICING_API_REGION = "us-east-1"


def parse_price_list(price_list, region=None, operating_system="Linux"):
    """Pricing ``GetProducts`` ``PriceList`` -> ``{instance_type: usd_per_hour}`` (pure).

    ``price_list`` is a list of JSON strings (or already decoded dicts), each a product with
    ``product.attributes`` and ``terms.OnDemand.<offer>.priceDimensions.<dim>.pricePerUnit.USD``.
    Keeps shared-tenancy, no-preinstalled-software, ``capacitystatus: Used`` products of the
    given OS (and region code when given); the lowest hourly price wins if several match.
    """
    prices = {}
    for item in price_list:
        product_doc = json.loads(item) if isinstance(item, (str, bytes)) else item
        attrs = (product_doc.get("product") or {}).get("attributes") or {}
        itype = attrs.get("instanceType")
        if not itype:
            continue
        if region and attrs.get("regionCode") and attrs["regionCode"] != region:
            continue
        if operating_system and attrs.get("operatingSystem", operating_system) != operating_system:
            continue
        if attrs.get("tenancy", "Shared") != "Shared":
            continue
        if attrs.get("preInstalledSw", "NA") != "NA":
            continue
        if attrs.get("capacitystatus", "Used") != "Used":
            continue
        for offer in ((product_doc.get("terms") or {}).get("OnDemand") or {}).values():
            for dim in (offer.get("priceDimensions") or {}).values():
                if dim.get("unit", "Hrs") not in ("Hrs", "Hours", "hour"):
                    continue
                usd = (dim.get("pricePerUnit") or {}).get("USD")
                if usd is None:
                    continue
                value = float(usd)
                if value <= 0:
                    continue
                if itype not in prices or value < prices[itype]:
                    prices[itype] = value
    return prices


def on_demand_prices(session, instance_types, region):
    """On-demand Linux $/hour per instance type from the Pricing API (``pricing:GetProducts``)."""
    _require_boto3()
    price_list = []
    try:
        client = session.client("pricing", region_name=PRICING_API_REGION)
        paginator = client.get_paginator("get_products")
        for itype in sorted(set(instance_types)):
            filters = [
                {"Type": "TERM_MATCH", "Field": "instanceType", "Value": itype},
                {"Type": "TERM_MATCH", "Field": "regionCode", "Value": region},
                {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "Linux"},
                {"Type": "TERM_MATCH", "Field": "tenancy", "Value": "Shared"},
                {"Type": "TERM_MATCH", "Field": "preInstalledSw", "Value": "NA"},
                {"Type": "TERM_MATCH", "Field": "capacitystatus", "Value": "Used"},
            ]
            for page in paginator.paginate(ServiceCode="AmazonEC2", Filters=filters, FormatVersion="aws_v1"):
                price_list.extend(page.get("PriceList", []))
    except Exception as exc:  # pylint: disable=broad-except
        raise translate_error(exc, "reading on-demand prices from the Pricing API", region=PRICING_API_REGION) from None
    return parse_price_list(price_list, region=region)


def table_prices(instance_types):
    """``{type: usd_per_hour}`` from the shipped table for the types it has a price for."""
    table = _table()
    prices = {}
    for name in instance_types:
        row = table.INSTANCE_TYPES.get(name)
        if row is not None and row.price_per_hour is not None:
            prices[name] = row.price_per_hour
    return prices


def resolve_prices(params, instance_types, pricing="table", session_factory=None, today=None):
    """``(prices, price_source, prices_date, warnings)`` for the cost view.

    ``pricing``: ``table`` (the shipped, dated table: us-east-1 on-demand), ``api`` (Pricing
    API for ``region``, errors fail) or ``auto`` (the API when AWS options are given,
    falling back to the table on missing credentials/unreachable/denied). Types the API has
    no price for keep the table's price, with a warning.
    """
    session_factory = session_factory or session_from_params
    table = _table()
    warnings = []
    table_source = "table (%s)" % table.PRICE_NOTE
    if pricing == "table" or (pricing == "auto" and not aws_requested(params) and not params.get("region")):
        return table_prices(instance_types), table_source, table.PRICES_AS_OF, warnings
    region = params.get("region") or table.PRICE_REGION
    try:
        session = session_factory(params)
        prices = on_demand_prices(session, instance_types, region)
    except AwsError as exc:
        if pricing == "api" or exc.kind not in FALLBACK_KINDS:
            raise
        warnings.append("Pricing API not used (%s); using the shipped table" % exc)
        return table_prices(instance_types), table_source, table.PRICES_AS_OF, warnings
    fallback = table_prices([t for t in instance_types if t not in prices])
    if fallback:
        warnings.append("The Pricing API returned no %s price for %s; using the shipped table's"
                        % (region, ", ".join(sorted(fallback))))
        prices.update(fallback)
    today = today or utcnow().date().isoformat()
    return prices, "pricing_api (%s, on-demand, Linux)" % region, today, warnings
