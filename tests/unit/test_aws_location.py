"""What an aws-secretsmanager:// token_store setting names (the store itself is tested on moto's server)."""

from __future__ import annotations

import pytest

from approvalmax_pipeline.sources.oauth_tokens.aws_store import DEFAULT_LOCK_TABLE, AwsLocation, is_aws_url


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
