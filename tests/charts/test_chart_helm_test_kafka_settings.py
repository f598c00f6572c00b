"""The helm test Pod's script reads the MOLSTREAM_KAFKA_* variables as molstream.kafka_security
does (it cannot import molstream: it runs in the image's plain Python): values stripped, the
password file's line end only removed, SCRAM_SHA_256 as SCRAM-SHA-256, and any of
0/false/no/off (any case) skipping the host name check."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
from chartlib import Render, find
from molstream.kafka_security import KafkaSecurity


def _script_settings(render: Render) -> Any:
    script = find(render(), "ConfigMap", "molstream-test")["data"]["check_stack.py"]
    start = script.index("def kafka_security():")
    end = script.index("return settings", start) + len("return settings")
    namespace: dict[str, Any] = {"os": os}
    exec(textwrap.dedent(script[start:end]), namespace)  # noqa: S102 - the chart's own code
    return namespace["kafka_security"]


@pytest.mark.parametrize("env", [
    {},
    {"SECURITY_PROTOCOL": "SSL", "CHECK_HOSTNAME": "False"},
    {"SECURITY_PROTOCOL": "SSL", "CHECK_HOSTNAME": " off "},
    {"SECURITY_PROTOCOL": "SSL", "CHECK_HOSTNAME": "0"},
    {"SECURITY_PROTOCOL": "SSL", "CHECK_HOSTNAME": "true"},
    {"SECURITY_PROTOCOL": "SASL_SSL ", "SASL_MECHANISM": "scram_sha_256",
     "SASL_USERNAME": " molstream ", "CHECK_HOSTNAME": "no"},
    {"SECURITY_PROTOCOL": "SASL_PLAINTEXT", "SASL_USERNAME": "molstream"},
], ids=["plaintext", "False", "off", "0", "true", "sasl-ssl", "sasl-plaintext"])
def test_the_helm_test_reads_kafka_settings_as_molstream_does(
    render: Render, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    password = tmp_path / "password"
    password.write_text(" two words \r\n")  # spaces are the password's, the line end is not
    variables = {f"MOLSTREAM_KAFKA_{k}": v for k, v in env.items()}
    if "SASL" in env.get("SECURITY_PROTOCOL", ""):
        variables["MOLSTREAM_KAFKA_SASL_PASSWORD_FILE"] = str(password)
    for key in [k for k in os.environ if k.startswith("MOLSTREAM_KAFKA_")]:
        monkeypatch.delenv(key)
    for key, value in variables.items():
        monkeypatch.setenv(key, value)
    script = {k: v for k, v in _script_settings(render)().items() if v is not None}
    assert script == KafkaSecurity.from_env(variables).client_kwargs()
