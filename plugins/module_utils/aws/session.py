# -*- coding: utf-8 -*-
# Copyright: contributors to gpu_slicing.eks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWS sessions and errors: the base every AWS call in ``aws/`` starts from.

* sessions from static keys, a profile, the environment or an assumed role (credentials
  botocore renews), optionally pointed at one endpoint URL;
* :class:`AwsError` and :func:`translate_error`, which turns a botocore exception into a
  message that says what to fix (kinds ``no_credentials``, ``no_region``, ``access_denied``,
  ``not_found``, ``not_active``, ``unreachable``, ``no_connection``, ``invalid``,
  ``missing_library``, ``aws``).

boto3/botocore are imported defensively: ``HAS_BOTO3`` / ``BOTO3_IMPORT_ERROR`` let modules
call ``missing_required_lib('boto3')``. Nothing here ever puts a secret key or a session
token into an exception message, a ``repr`` or a log line.
"""

from __future__ import annotations

import datetime
import traceback

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

#: AwsError kinds after which ``source: auto`` / ``pricing: auto`` fall back to the shipped table.
FALLBACK_KINDS = frozenset(["no_credentials", "no_region", "unreachable", "missing_library", "access_denied"])


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


def require_boto3():
    if not HAS_BOTO3:
        raise AwsError("boto3 and botocore are required to talk to AWS", kind="missing_library",
                       fix="install boto3 (pip install 'boto3>=1.35') in the Python that runs the module")


# ---------------------------------------------------------------------------
# time helpers
# ---------------------------------------------------------------------------
def utcnow():
    """Timezone-aware current UTC time."""
    return datetime.datetime.now(datetime.timezone.utc)


def as_utc(value):
    if value.tzinfo is None:
        return value.replace(tzinfo=datetime.timezone.utc)
    return value.astimezone(datetime.timezone.utc)


def isoformat_z(value):
    """``2026-11-24T10:00:00Z`` (the format of ExecCredential's expirationTimestamp)."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


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
    require_boto3()
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
    require_boto3()
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
    """Session from the shared module options (see ``aws/options.py``)."""
    return make_session(
        region=params.get("region"),
        profile=params.get("aws_profile"),
        access_key=params.get("access_key"),
        secret_key=params.get("secret_key"),
        session_token=params.get("session_token"),
        role_arn=params.get("aws_role_arn"),
        endpoint_url=params.get("endpoint_url"),
    )


def aws_requested(params):
    """True when the options name a cluster, a role, a profile or keys."""
    return any(params.get(k) for k in ("eks_cluster_name", "aws_role_arn", "aws_profile", "access_key"))


def boto3_missing():
    """The failure a module reports when boto3 is not installed (Ansible's own wording)."""
    from ansible.module_utils.basic import missing_required_lib

    return GpuSlicingError(missing_required_lib("boto3"), kind="missing_library", exception=BOTO3_IMPORT_ERROR)
