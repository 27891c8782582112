"""A token store in AWS Secrets Manager, locked in DynamoDB, for runs on several machines in AWS.

The token family is one secret's value; every save is one `PutSecretValue`, which makes the new
version AWSCURRENT (and the old one AWSPREVIOUS) atomically and durably before it returns, so the
new refresh token is stored before the old one is forgotten. The lock is a DynamoDB lease
(lease_lock.py): Secrets Manager has nothing that waits.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .errors import TokenStoreError
from .lease_lock import KEY_ATTRIBUTE, DynamoLease
from .record import TokenRecord
from .sealing import PLAIN, TokenSealing, rewrite_in_current_form

SCHEME = "aws-secretsmanager://"
log = logging.getLogger(__name__)

DEFAULT_LOCK_TABLE = "approvalmax-token-lock"
VERSION_WAIT_SECONDS = 30.0  # how long a holder waits for Secrets Manager to serve the last saved version
INSTALL_HINT = "an AWS Secrets Manager token store needs boto3, which is not installed: pip install -e '.[aws]'"
# What each call needs, for the line an AccessDenied becomes.
_PERMISSIONS = {
    "GetSecretValue": "secretsmanager:GetSecretValue",
    "PutSecretValue": "secretsmanager:PutSecretValue",
    "CreateSecret": "secretsmanager:CreateSecret",
    "PutItem": "dynamodb:PutItem",
    "GetItem": "dynamodb:GetItem",
    "UpdateItem": "dynamodb:UpdateItem",
    "DeleteItem": "dynamodb:DeleteItem",
}


def is_aws_url(location: str) -> bool:
    """Whether a `token_store` setting names an AWS Secrets Manager secret."""
    return location.startswith(SCHEME)


@dataclass(frozen=True)
class AwsLocation:
    """What an `aws-secretsmanager://SECRET?region=R&lock_table=T&lease=S` setting names."""

    secret: str
    region: str | None = None
    lock_table: str = DEFAULT_LOCK_TABLE
    lease_seconds: float = 60.0

    @classmethod
    def parse(cls, url: str) -> AwsLocation:
        """Raises ValueError with the fix when the URL is malformed."""
        parts = urlsplit(url)
        secret = unquote(parts.netloc + parts.path).strip("/")
        if not secret:
            raise ValueError(f"no secret name: give {SCHEME}<secret-name>?region=<region>")
        options = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = sorted(set(options) - {"region", "lock_table", "lease"})
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(unknown)}: use region, lock_table and lease")
        try:
            lease = float(options.get("lease", "60"))
        except ValueError:
            lease = 0.0
        if not 1 <= lease <= 600:
            raise ValueError("lease must be a number of seconds from 1 to 600 (default 60)")
        return cls(secret, options.get("region") or None, options.get("lock_table") or DEFAULT_LOCK_TABLE, lease)

    def __str__(self) -> str:
        region = f"?region={self.region}" if self.region else ""
        return f"{SCHEME}{self.secret}{region} (lock in DynamoDB table {self.lock_table})"


def _boto3() -> Any:
    try:
        import boto3
    except ImportError as exc:
        raise TokenStoreError(INSTALL_HINT) from exc
    return boto3


def describe(exc: BaseException, doing: str) -> TokenStoreError:
    """One line for a botocore error: its code and, for a refusal, the permission that is missing."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code", "Unknown")
        operation = getattr(exc, "operation_name", "")
        if code in ("AccessDeniedException", "AccessDenied", "UnrecognizedClientException"):
            needed = _PERMISSIONS.get(operation, operation)
            return TokenStoreError(f"{doing}: access denied ({code}); grant {needed} on it (docs/security.md)")
        if code == "DecryptionFailure":
            return TokenStoreError(f"{doing}: KMS refused to decrypt the secret; grant kms:Decrypt on its key")
        if code == "ResourceNotFoundException" and operation in _PERMISSIONS and operation.endswith("Item"):
            return TokenStoreError(f"{doing}: the table does not exist; create it as docs/authentication.md shows")
        return TokenStoreError(f"{doing}: {code}")
    name = type(exc).__name__
    if name == "NoCredentialsError":
        return TokenStoreError(f"{doing}: no AWS credentials found; give a role, a profile or AWS_ACCESS_KEY_ID")
    if name == "NoRegionError":
        return TokenStoreError(f"{doing}: no AWS region; add ?region=<region> to the token_store URL")
    return TokenStoreError(f"{doing}: {name}")


def aws_clients(where: AwsLocation) -> tuple[Any, Any]:
    """Secrets Manager and DynamoDB clients in the setting's region (else the AWS default chain's).
    botocore's debug records hold request and response bodies, the tokens among them: whatever
    the host application's log level, they are kept out of its logs."""
    for name in ("botocore", "boto3"):
        if logging.getLogger(name).getEffectiveLevel() < logging.INFO:
            logging.getLogger(name).setLevel(logging.INFO)
    boto3 = _boto3()
    try:
        session = boto3.session.Session(region_name=where.region)
        return session.client("secretsmanager"), session.client("dynamodb")
    except Exception as exc:
        raise describe(exc, f"cannot open the token store {where}") from exc


def lease_beside(url: str, key: str, timeout: float) -> DynamoLease:
    """A lease on `key` in the lock table of the store at `url`: the dataset lock of destinations
    without one of their own lives there, where every run of the token family reaches."""
    where = AwsLocation.parse(url)
    _, dynamodb = aws_clients(where)
    return DynamoLease(
        dynamodb, where.lock_table, key, lease_seconds=where.lease_seconds, timeout=timeout, describe=describe
    )


class SecretsManagerTokenStore:
    """One token family in one secret; the lock is a lease in a DynamoDB table.

    With keys in `sealing`, the secret holds the record encrypted (a JSON string) inside Secrets
    Manager's own KMS encryption, so reading the secret alone does not give the tokens; a value in
    an older form read with the lock held is rewritten in the newest form at once.
    """

    def __init__(
        self,
        url: str,
        lock_timeout: float = 120.0,
        sealing: TokenSealing = PLAIN,
        *,
        clients: tuple[Any, Any] | None = None,
    ) -> None:
        self.where = AwsLocation.parse(url)
        self.sealing = sealing
        self._secrets, dynamodb = clients or aws_clients(self.where)
        self._dynamodb = dynamodb
        self._lease = DynamoLease(
            dynamodb,
            self.where.lock_table,
            f"token-store:{self.where.secret}",
            lease_seconds=self.where.lease_seconds,
            timeout=max(lock_timeout, 2 * self.where.lease_seconds),  # long enough to outwait a dead holder
            describe=describe,
        )

    @property
    def location(self) -> str:
        return str(self.where)

    def __repr__(self) -> str:
        return f"SecretsManagerTokenStore({self.location!r})"

    def lock(self) -> contextlib.AbstractContextManager[None]:
        return self._lease.hold()

    def load(self) -> TokenRecord | None:
        """The record. Under the lock it is never older than the version the last holder saved (named
        in the lock table): a read of AWSCURRENT that lagged behind that save would hand a refresher
        a refresh token already spent, so the named version is read, waited for if Secrets Manager
        does not serve it yet, unless AWSCURRENT was created after it (a value put by hand)."""
        try:
            response = self._secrets.get_secret_value(SecretId=self.where.secret)
        except self._secrets.exceptions.ResourceNotFoundException:
            response = None  # no secret yet, or a secret with no value yet
        except Exception as exc:
            raise describe(exc, f"cannot read the token store {self.location}") from exc
        version = self._saved_version() if self._lease.held else None
        if version is not None and (response is None or response.get("VersionId") != version):
            saved = self._version(version)
            if response is None or saved["CreatedDate"] >= response["CreatedDate"]:
                response = saved
        if response is None:
            return None
        try:
            value = json.loads(response.get("SecretString") or "")
        except json.JSONDecodeError:
            value = None  # the sealing below refuses it in the words every store uses
        opened = self.sealing.open(value, self.location)
        if self._lease.held:
            rewrite_in_current_form(opened, self.save, self.location)
        return opened.record

    def save(self, record: TokenRecord) -> None:
        payload = json.dumps(self.sealing.seal(record), sort_keys=True)
        if self._lease.held:
            self._lease.confirm()
        try:
            try:
                saved = self._secrets.put_secret_value(SecretId=self.where.secret, SecretString=payload)
            except self._secrets.exceptions.ResourceNotFoundException:
                saved = self._secrets.create_secret(Name=self.where.secret, SecretString=payload)
        except Exception as exc:
            raise describe(exc, f"cannot save tokens to {self.location}") from exc
        if self._lease.held and saved.get("VersionId"):
            self._note_version(str(saved["VersionId"]))

    def _version(self, version: str) -> dict[str, Any]:
        deadline = time.monotonic() + VERSION_WAIT_SECONDS
        while True:
            try:
                return dict(self._secrets.get_secret_value(SecretId=self.where.secret, VersionId=version))
            except self._secrets.exceptions.ResourceNotFoundException as exc:
                if time.monotonic() >= deadline:
                    raise TokenStoreError(
                        f"the token store {self.location} does not serve the version its last save wrote "
                        f"({version}) after {VERSION_WAIT_SECONDS:.0f} s; run again later (if the secret was "
                        f"deleted or replaced on purpose, delete the item token-store-version:{self.where.secret} "
                        f"from table {self.where.lock_table})"
                    ) from exc
                time.sleep(0.5)
            except Exception as exc:
                raise describe(exc, f"cannot read the token store {self.location}") from exc

    def _version_key(self) -> dict[str, Any]:
        return {KEY_ATTRIBUTE: {"S": f"token-store-version:{self.where.secret}"}}

    def _note_version(self, version: str) -> None:
        """Name the version just saved beside the lease, for the next holder to read exactly it. The
        token is saved already: a failure here costs the next holder that check, not the token."""
        try:
            self._dynamodb.put_item(
                TableName=self.where.lock_table, Item={**self._version_key(), "version": {"S": version}}
            )
        except Exception as exc:
            log.warning("%s", describe(exc, f"cannot note the saved version in {self.where.lock_table}"))

    def _saved_version(self) -> str | None:
        try:
            item = self._dynamodb.get_item(
                TableName=self.where.lock_table, Key=self._version_key(), ConsistentRead=True
            ).get("Item")
        except Exception as exc:
            raise describe(exc, f"cannot read the lock table {self.where.lock_table}") from exc
        return str(item["version"]["S"]) if item and "version" in item else None
