"""The fetcher Job's policies: the fetcher's exit status for a permanent error (which the Job's
podFailurePolicy fails on at once), and the IngestRequest that says so at once; finished Jobs of
scheduled runs pruned to the history limits.

The exit status is read from the fetcher's own command line; the Job side runs against the real
test API server, where the test plays the Job controller (no controller-manager runs there): it
writes the conditions the controller writes when a podFailurePolicy rule matches.
"""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner
from molstream import cli, fetcher
from molstream.contract import ContractError
from molstream.fetch.common import FetchError, Transient
from molstream.publish import PublishError
from molstream.read import ReadError
from molstream_operator.manifests import FETCHER_EXIT_PERMANENT

# --- the fetcher's exit status -------------------------------------------------------------------


def _failing(stage: str, error: BaseException, cause: BaseException | None = None) -> Any:
    """fetcher.run failing the way it does: the stage's error turned into IngestFailed."""

    def run(*_: Any, **__: Any) -> None:
        try:
            if cause is None:
                raise error
            try:
                raise cause
            except type(cause):
                raise error from None
        except (FetchError, ReadError, ContractError, PublishError) as e:
            raise fetcher.IngestFailed(stage, str(e)) from None

    return run


PERMANENT = [
    ("fetch", FetchError("ftp://h/a.csv: login refused (530 Login incorrect)")),
    ("fetch", FetchError("https://h/a.csv: no such file (HTTP 404)")),
    ("fetch", FetchError("https://h/a.csv: access refused (HTTP 403): check the username")),
    ("fetch", FetchError("https://h/a.csv: host 'evil' is not on the allow-list")),
    ("read", ReadError("line 3: a quoted field is never closed")),
    ("read", ContractError("missing required column(s): activity_id")),
]
RETRIED = [
    ("publish", PublishError("cannot reach Kafka at kafka:9092")),
    ("fetch", FetchError("ftp://h/a.csv: download took longer than 600s "
                         "(MOLSTREAM_DOWNLOAD_TIMEOUT_S)")),
]


@pytest.mark.parametrize(("stage", "error"), PERMANENT)
def test_a_permanent_error_exits_with_the_status_the_job_fails_on(
    monkeypatch: pytest.MonkeyPatch, stage: str, error: BaseException
) -> None:
    monkeypatch.setattr(fetcher, "run", _failing(stage, error))
    result = CliRunner().invoke(cli.main, ["fetch", "--url", "https://h/a.csv"])
    assert result.exit_code == cli.EXIT_PERMANENT == FETCHER_EXIT_PERMANENT == 3, result.output
    assert f"error: {stage} failed: {error}" in result.output


@pytest.mark.parametrize(("stage", "error"), RETRIED)
def test_a_failure_a_retry_may_overcome_exits_2(
    monkeypatch: pytest.MonkeyPatch, stage: str, error: BaseException
) -> None:
    monkeypatch.setattr(fetcher, "run", _failing(stage, error))
    result = CliRunner().invoke(cli.main, ["fetch", "--url", "https://h/a.csv"])
    assert result.exit_code == cli.EXIT_FAILED == 2, result.output


def test_a_download_that_gave_up_after_its_retries_exits_2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gave_up = FetchError("ftp://h/a.csv: giving up after 6 attempt(s): connection refused")
    monkeypatch.setattr(fetcher, "run", _failing("fetch", gave_up, Transient("refused")))
    result = CliRunner().invoke(cli.main, ["fetch", "--url", "https://h/a.csv"])
    assert result.exit_code == 2, result.output


def test_a_bad_loaded_list_is_permanent() -> None:
    result = CliRunner().invoke(cli.main, ["fetch", "--url", "https://h/a.csv",
                                           "--loaded", "not json"])
    assert result.exit_code == cli.EXIT_PERMANENT, result.output
