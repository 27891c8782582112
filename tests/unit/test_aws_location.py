"""What an aws-secretsmanager:// token_store setting names, and the one line each AWS refusal becomes (the store
itself is tested on moto's server)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

from approvalmax_pipeline.sources.oauth_tokens import TokenStoreError
from approvalmax_pipeline.sources.oauth_tokens.aws_store import (
    DEFAULT_LOCK_TABLE,
    AwsLocation,
    SecretsManagerTokenStore,
    describe,
    is_aws_url,
)


def test_a_full_setting() -> None:
    where = AwsLocation.parse("aws-secretsmanager://Prod/ApprovalMax/Tokens?region=eu-west-1&lock_table=locks&lease=30")
    assert where == AwsLocation("Prod/ApprovalMax/Tokens", "eu-west-1", "locks", 30.0)  # the name's case kept
    assert str(where) == "aws-secretsmanager://Prod/ApprovalMax/Tokens?region=eu-west-1 (lock in DynamoDB table locks)"


def test_defaults_and_recognition() -> None:
    assert AwsLocation.parse("aws-secretsmanager://tokens") == AwsLocation("tokens", None, DEFAULT_LOCK_TABLE, 60.0)
    assert is_aws_url("aws-secretsmanager://tokens") and not is_aws_url("~/.approvalmax/tokens.json")


@pytest.mark.parametrize("lease", ["0", "601", "soon", ""])
def test_a_lease_out_of_range_is_refused(lease: str) -> None:
    with pytest.raises(ValueError, match="lease must be a number of seconds from 1 to 600"):
        AwsLocation.parse(f"aws-secretsmanager://tokens?lease={lease}")


@pytest.mark.parametrize(
    ("error", "fragment"),
    [
        (
            ClientError({"Error": {"Code": "AccessDeniedException"}}, "PutSecretValue"),
            "grant secretsmanager:PutSecretValue",
        ),
        (ClientError({"Error": {"Code": "AccessDeniedException"}}, "UpdateItem"), "grant dynamodb:UpdateItem"),
        (ClientError({"Error": {"Code": "DecryptionFailure"}}, "GetSecretValue"), "grant kms:Decrypt"),
        (ClientError({"Error": {"Code": "ResourceNotFoundException"}}, "PutItem"), "the table does not exist"),
        (NoCredentialsError(), "no AWS credentials found"),
        (NoRegionError(), "add ?region=<region>"),
    ],
)
def test_each_aws_refusal_is_one_line_naming_the_fix(error: Exception, fragment: str) -> None:
    line = str(describe(error, "cannot save tokens to aws-secretsmanager://t"))
    assert line.startswith("cannot save tokens to aws-secretsmanager://t: ") and fragment in line
    assert "\n" not in line


def test_no_region_anywhere_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    with pytest.raises(TokenStoreError, match=r"no AWS region; add \?region=<region>"):
        SecretsManagerTokenStore("aws-secretsmanager://tokens")
