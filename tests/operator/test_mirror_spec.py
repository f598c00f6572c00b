"""spec.mode: mirror and spec.release: checked by the API server's schema and the operator, and
handed to the fetcher Job as its options (read back by the fetcher's own command line)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from molstream.config import Mode as FetcherMode
from molstream_operator.config import FetcherTemplate, OperatorConfig
from molstream_operator.manifests import build_job
from molstream_operator.models import IngestRequestRef, IngestRequestSpec, Mode
from molstream_operator.urls import InvalidSpecError
from operator_harness import Namespace, ingestrequest, secret

REF = IngestRequestRef(namespace="chem", name="chembl", uid="uid-1", generation=1)
CONFIG = OperatorConfig(kafka_bootstrap="kafka:9092", topic_prefix="molstream",
                        fetcher=FetcherTemplate.from_mapping({"image": "molstream:dev"}))
ARGS = ["--release=chembl_35", "--mirror-key=chem/chembl"]


def _args(spec: dict) -> list[str]:
    (container,) = build_job(REF, IngestRequestSpec.parse({"url": "https://h/a.csv", **spec}),
                             CONFIG, run=1)["spec"]["template"]["spec"]["containers"]
    return container["args"]


def test_a_mirror_s_key_is_its_ingestrequest_whatever_its_url() -> None:
    args = _args({"mode": "mirror", "release": "chembl_35"})
    assert args[args.index("--mode") + 1] == "mirror" and args[-2:] == ARGS
    args = _args({"mode": "upsert"})  # no release, no key
    assert not [a for a in args if a.startswith(("--release", "--mirror-key"))]
    assert {m.cli for m in Mode} <= {m.value for m in FetcherMode}


@pytest.mark.parametrize(("spec", "field"), [
    ({"mode": "sync"}, "spec.mode"), ({"release": "chembl 35"}, "spec.release"),
    ({"release": ""}, "spec.release"), ({"release": 35}, "spec.release")])
def test_the_operator_refuses_a_bad_mode_or_release(spec: dict, field: str) -> None:
    with pytest.raises(InvalidSpecError) as info:
        IngestRequestSpec.parse({"url": "https://h/a.csv", **spec})
    assert info.value.field == field


def test_the_fetcher_reads_the_options_the_operator_writes(monkeypatch) -> None:
    from molstream import cli, fetcher

    seen = {}

    def run(url, *, settings, mode, **_):
        seen.update(release=settings.release, key=settings.mirror_key, mode=mode)
        raise fetcher.IngestFailed("fetch", "stop here")

    monkeypatch.setattr(fetcher, "run", run)
    args = _args({"mode": "mirror", "release": "chembl_35"})  # "fetch", then its options
    result = CliRunner().invoke(cli.main, [a.replace("$$", "$") for a in args],
                                env={"MOLSTREAM_SOURCE_URL": "https://h/a.csv"})
    assert result.exit_code == 2, result.output
    assert seen == {"release": "chembl_35", "key": "chem/chembl", "mode": FetcherMode.MIRROR}


@pytest.mark.kube
@pytest.mark.parametrize(("spec", "field", "needle"), [
    ({"mode": "sync"}, "spec.mode", "Unsupported value"),
    ({"release": "chembl 35"}, "spec.release", "should match"),
])
def test_a_bad_mode_or_release_is_refused_by_the_api_server(
    ns: Namespace, kubectl: Any, spec: dict[str, Any], field: str, needle: str
) -> None:
    manifest = ingestrequest("bad-mirror", **spec)
    result = kubectl("apply", "-f", "-", namespace=ns.name, input=yaml.safe_dump(manifest),
                     check=False)
    assert result.returncode != 0
    assert field in result.stderr and needle in result.stderr, result.stderr


@pytest.mark.kube
def test_a_mirror_reaches_the_fetcher_job(ns: Namespace, start_operator: Any) -> None:
    op = start_operator()
    ns.context = op.tail
    ns.apply([secret("pw-mirror"), ingestrequest("chembl", mode="mirror", release="chembl_35")])
    (job,) = ns.wait_jobs(1)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"][-2:] == ["--release=chembl_35", f"--mirror-key={ns.name}/chembl"]
