"""The chart's operator.sftp.knownHosts: the operator's MOLSTREAM_KNOWN_HOSTS, as the
operator's own parser reads it; a line that is not one is refused by the values schema."""

from __future__ import annotations

from chartlib import CHART, Helm, Render, env_of, find
from molstream_dev.sftp import new_key
from molstream_operator.config import OperatorConfig

LINES = [f"[sftp.example.org]:2222 {new_key()[1]}", f"sftp.example.net {new_key()[1]} a note"]


def _operator_env(objects) -> dict[str, str]:
    operator = find(objects, "Deployment", "molstream-operator")
    return env_of(operator["spec"]["template"]["spec"]["containers"][0])


def test_known_hosts_reach_the_operator(render: Render, tmp_path) -> None:
    assert "MOLSTREAM_KNOWN_HOSTS" not in _operator_env(render())  # none by default
    values = tmp_path / "values.yaml"
    values.write_text("operator:\n  sftp:\n    knownHosts:\n"
                      + "".join(f"      - {line!r}\n" for line in LINES))
    env = _operator_env(render(values_files=[values]))
    assert env["MOLSTREAM_KNOWN_HOSTS"] == "\n".join(LINES)
    config = OperatorConfig.from_env({"MOLSTREAM_KNOWN_HOSTS": env["MOLSTREAM_KNOWN_HOSTS"]})
    assert config.known_hosts == "\n".join(LINES)


def test_a_line_that_is_not_a_known_hosts_entry_is_refused(helm_offline: Helm,
                                                           tmp_path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("operator:\n  sftp:\n    knownHosts: ['sftp.example.org']\n")
    result = helm_offline("template", "molstream", CHART, "--values", values, check=False)
    assert result.returncode != 0 and "knownHosts" in result.stderr, result.stderr
