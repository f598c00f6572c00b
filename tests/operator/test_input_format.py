"""spec.format and spec.columns: checked by the API server's schema, parsed by the operator and
handed to the fetcher Job as its options (and read back by the fetcher's own command line)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from molstream.contract import COLUMN_NAMES
from molstream_dev.crd import spec_schema
from molstream_operator.config import FetcherTemplate, OperatorConfig
from molstream_operator.manifests import build_cronjob, build_job
from molstream_operator.models import CONTRACT_COLUMNS, IngestRequestRef, IngestRequestSpec
from molstream_operator.urls import InvalidSpecError
from operator_harness import Namespace, ingestrequest, secret

REF = IngestRequestRef(namespace="chem", name="chembl", uid="uid-1", generation=1)
CONFIG = OperatorConfig(kafka_bootstrap="kafka:9092", topic_prefix="molstream",
                        fetcher=FetcherTemplate.from_mapping({"image": "molstream:dev"}))
FORMAT = {"delimiter": "\t", "nullTokens": ["NULL", "\\N", "-"], "member": "a $(x).csv"}
COLUMNS = {"pref_name": "molecule_name", "Target Name": "target_name"}
ARGS = ["--delimiter=\t", "--null-token=NULL", "--null-token=\\N", "--null-token=-",
        "--member=a $$(x).csv", "--column=Target Name=target_name",
        "--column=pref_name=molecule_name"]


def _spec_schema() -> dict[str, Any]:
    return spec_schema()


def test_the_contract_columns_agree_with_molstream_and_the_crd() -> None:
    assert CONTRACT_COLUMNS == COLUMN_NAMES
    schema = _spec_schema()["properties"]
    assert tuple(schema["columns"]["additionalProperties"]["enum"]) == COLUMN_NAMES
    assert schema["format"]["properties"]["delimiter"]["enum"] == [",", "\t", ";", "|"]


def test_format_and_columns_become_the_fetchers_options() -> None:
    spec = IngestRequestSpec.parse({"url": "https://h/a.csv", "format": FORMAT,
                                    "columns": COLUMNS})
    assert (spec.delimiter, spec.null_tokens, spec.member) == ("\t", ("NULL", "\\N", "-"),
                                                               "a $(x).csv")
    job = build_job(REF, spec, CONFIG, run=1)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"][-len(ARGS):] == ARGS
    cron = build_cronjob(REF, IngestRequestSpec.parse(
        {"url": "https://h/a.csv", "schedule": "@daily", "format": FORMAT, "columns": COLUMNS}),
        CONFIG)
    (container,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["args"][-len(ARGS):] == ARGS
    # None given: the options are left out, and the fetcher detects what it can.
    (container,) = build_job(REF, IngestRequestSpec.parse({"url": "https://h/a.csv"}), CONFIG,
                             run=1)["spec"]["template"]["spec"]["containers"]
    assert not [a for a in container["args"] if a.startswith(("--delimiter", "--null-token",
                                                              "--member", "--column"))]


def test_the_fetcher_reads_the_options_the_operator_writes(monkeypatch) -> None:
    """The Job's options, as Kubernetes hands them over ($$ unescaped), through the fetcher's
    real command line up to the Settings it runs with."""
    from molstream import cli, fetcher

    seen = {}

    def run(url, *, settings, **_):
        seen["fmt"] = fetcher.input_format(settings)
        raise fetcher.IngestFailed("fetch", "stop here")

    monkeypatch.setattr(fetcher, "run", run)
    args = [a.replace("$$", "$") for a in ARGS]
    result = CliRunner().invoke(cli.main, ["fetch", "--url", "https://h/a.csv", *args])
    assert result.exit_code == 2, result.output
    fmt = seen["fmt"]
    assert (fmt.delimiter, fmt.null_tokens, fmt.member) == ("\t", ("NULL", "\\N", "-"),
                                                            "a $(x).csv")
    assert fmt.columns == (("Target Name", "target_name"), ("pref_name", "molecule_name"))


@pytest.mark.parametrize(("spec", "field"), [
    ({"format": {"delimiter": ":"}}, "spec.format.delimiter"),
    ({"format": {"nullTokens": [""]}}, "spec.format.nullTokens"),
    ({"format": {"member": ""}}, "spec.format.member"),
    ({"format": "tsv"}, "spec.format"),
    ({"columns": {"pref_name": "name"}}, "spec.columns.pref_name"),
    ({"columns": {"a": "target_name", "b": "target_name"}}, "spec.columns"),
])
def test_the_operator_refuses_a_bad_format_naming_the_field(spec: dict, field: str) -> None:
    with pytest.raises(InvalidSpecError) as info:
        IngestRequestSpec.parse({"url": "https://h/a.csv", **spec})
    assert info.value.field == field


@pytest.mark.kube
@pytest.mark.parametrize(("spec", "field", "needle"), [
    ({"format": {"delimiter": ":"}}, "spec.format.delimiter", "Unsupported value"),
    ({"format": {"delimiter": "\\t"}}, "spec.format.delimiter", "Unsupported value"),
    ({"format": {"nullTokens": [""]}}, "spec.format.nullTokens[0]", "should be at least 1"),
    ({"format": {"nullTokens": ["NA", "NA"]}}, "spec.format.nullTokens[1]", "Duplicate value"),
    ({"format": {"member": ""}}, "spec.format.member", "should be at least 1"),
    ({"columns": {"pref_name": "name"}}, "spec.columns.pref_name", "Unsupported value"),
    ({"columns": {"a": "target_name", "b": "target_name"}}, "spec.columns",
     "two headers map to the same contract column"),
])
def test_a_bad_format_is_refused_by_the_api_server(
    ns: Namespace, kubectl: Any, spec: dict[str, Any], field: str, needle: str
) -> None:
    manifest = ingestrequest("bad-format", **spec)
    result = kubectl(
        "apply", "-f", "-", namespace=ns.name, input=yaml.safe_dump(manifest), check=False
    )
    assert result.returncode != 0
    assert field in result.stderr and needle in result.stderr, result.stderr
    assert ns.admin.get_ingestrequest(ns.name, "bad-format") is None


@pytest.mark.kube
def test_a_format_reaches_the_fetcher_job(ns: Namespace, start_operator: Any) -> None:
    op = start_operator()
    ns.context = op.tail
    ns.apply([secret("pw-format"), ingestrequest("tsv", format=FORMAT, columns=COLUMNS)])
    (job,) = ns.wait_jobs(1)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"][-len(ARGS):] == ARGS
    stored = ns.ir("tsv")["spec"]
    assert stored["format"] == FORMAT and stored["columns"] == COLUMNS
