"""``python -m molstream_operator``: run the operator.

Namespaces: ``-n NS`` (repeatable), else ``MOLSTREAM_WATCH_NAMESPACES`` (comma-separated), else
the Pod's own namespace; ``--all-namespaces`` serves the whole cluster (needs a ClusterRole).
Logs are JSON lines by default (``--log-format text`` for people); ``--liveness`` serves kopf's
health endpoint (``/healthz``) for the liveness probe.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
import kopf

from . import (
    metrics,
    startup,  # noqa: F401 - registers the handlers (the package imports all of them)
)
from .config import OperatorConfig

_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _default_namespaces() -> tuple[str, ...]:
    listed = tuple(
        item.strip()
        for item in os.environ.get("MOLSTREAM_WATCH_NAMESPACES", "").split(",")
        if item.strip()
    )
    if listed:
        return listed
    if os.environ.get("POD_NAMESPACE"):
        return (os.environ["POD_NAMESPACE"],)
    if _SA_NAMESPACE.is_file():
        return (_SA_NAMESPACE.read_text().strip(),)
    return ()


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-n", "--namespace", "namespaces", multiple=True, help="Namespace to serve.")
@click.option("-A", "--all-namespaces", is_flag=True, help="Serve every namespace.")
@click.option(
    "--liveness",
    default=lambda: os.environ.get("MOLSTREAM_LIVENESS", "http://0.0.0.0:8080/healthz"),
    show_default="http://0.0.0.0:8080/healthz",
    help="Liveness endpoint URL; empty to disable.",
)
@click.option(
    "--log-format",
    type=click.Choice(["json", "text"]),
    default=lambda: os.environ.get("MOLSTREAM_LOG_FORMAT", "json"),
    show_default="json",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    envvar="MOLSTREAM_METRICS_PORT",
    default=None,
    help="Serve Prometheus metrics on this port (/metrics) [env MOLSTREAM_METRICS_PORT]; "
    "off when unset.",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logs (never with credentials).")
def main(
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    liveness: str,
    log_format: str,
    metrics_port: int | None,
    verbose: bool,
) -> None:
    """Run the molstream IngestRequest operator."""
    kopf.configure(
        verbose=verbose,
        log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.FULL,
        log_refkey="k8s",
    )
    if not all_namespaces:
        namespaces = namespaces or _default_namespaces()
        if not namespaces:
            raise click.UsageError(
                "no namespace: pass -n NAMESPACE, --all-namespaces or MOLSTREAM_WATCH_NAMESPACES"
            )
    config = OperatorConfig.from_env(namespaces=() if all_namespaces else tuple(namespaces))
    try:
        metrics.serve(metrics.OPERATOR, metrics_port)
    except OSError as exc:
        raise click.ClickException(
            f"cannot serve metrics on port {metrics_port}: {exc.strerror or exc}"
        ) from None
    kopf.run(
        clusterwide=all_namespaces,
        namespaces=() if all_namespaces else list(namespaces),
        standalone=True,
        liveness_endpoint=liveness or None,
        memo=kopf.Memo(config=config),
    )


if __name__ == "__main__":
    main(prog_name="python -m molstream_operator")
