"""``python -m molstream_operator``: run the operator.

Namespaces: ``-n NS`` (repeatable), else ``MOLSTREAM_WATCH_NAMESPACES`` (comma-separated), else
the Pod's own namespace; ``--all-namespaces`` serves the whole cluster (needs a ClusterRole).
Logs are JSON lines by default (``--log-format text`` for people); ``--liveness`` serves kopf's
health endpoint (``/healthz``) for the liveness probe.

With ``MOLSTREAM_LEASE_NAME`` set, replicas elect one leader on that Lease (``leadership``):
until it holds the Lease a replica only serves ``--liveness`` (no watch, no Kafka consumer, no
handler); it then runs kopf, exits with status 1 the moment it loses the Lease (its Pod
restarts as a standby) and releases the Lease once kopf has stopped on SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

import click
import kopf
import kubernetes

from . import (
    leadership,
    metrics,
    startup,  # noqa: F401 - registers the handlers (the package imports all of them)
)
from .config import OperatorConfig
from .kube import ApiError, Kube

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
    try:
        config = OperatorConfig.from_env(namespaces=() if all_namespaces else tuple(namespaces))
    except ValueError as exc:  # a setting (MOLSTREAM_KAFKA_*, ...): one line naming it
        raise click.ClickException(str(exc)) from None
    try:
        own = _SA_NAMESPACE.read_text().strip() if _SA_NAMESPACE.is_file() else ""
        election = leadership.ElectionSettings.from_env(
            fallback_namespace=own or next(iter(namespaces), ""))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        metrics.serve(metrics.OPERATOR, metrics_port)
    except OSError as exc:
        raise click.ClickException(
            f"cannot serve metrics on port {metrics_port}: {exc.strerror or exc}"
        ) from None
    # Set by SIGTERM/SIGINT while standing by; kopf installs its own handlers once it runs.
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    elector = _lead(election, liveness, stop) if election else None
    try:
        asyncio.run(_operate(
            stop,
            clusterwide=all_namespaces,
            namespaces=() if all_namespaces else list(namespaces),
            standalone=True,
            liveness_endpoint=liveness or None,
            memo=kopf.Memo(config=config, elector=elector),
        ))
    except asyncio.CancelledError:  # as kopf.run
        pass
    finally:
        if elector is not None:
            elector.release()


async def _operate(stop: threading.Event, **options: Any) -> None:
    """kopf.operator, cancelled by a signal that comes before kopf handles them itself (a
    SIGTERM between the election and kopf's start still stops it, and releases the Lease).
    No stop_flag: kopf would leave its waiter pending and wait 5 s for it at every exit."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)  # replaced by kopf's own
    if not stop.is_set():
        await kopf.operator(**options)


def _lead(
    election: leadership.ElectionSettings, liveness: str, stop: threading.Event
) -> leadership.LeaderElector:
    """Stand by until this replica holds the Lease, then keep renewing it."""
    try:
        elector = leadership.LeaderElector(election, Kube.from_environment())
    except kubernetes.config.ConfigException as exc:
        raise click.ClickException(f"no Kubernetes credentials: {exc}") from None
    try:
        health = leadership.StandbyHealth(liveness, elector) if liveness else None
    except OSError as exc:
        raise click.ClickException(f"cannot serve {liveness}: {exc.strerror or exc}") from None
    try:
        if not elector.acquire(stop):
            return elector
    except ApiError as exc:
        raise click.ClickException(f"cannot take part in the election on the Lease "
                                   f"{election.where}: {exc}") from None
    finally:
        if health is not None:
            health.close()  # kopf serves the same address from now on
    elector.keep(_stop_acting)
    return elector


def _stop_acting(reason: str) -> None:
    """Another replica may lead already: no handler, no consumer may act one moment longer.
    No graceful stop (it could outlast the lease); the Pod restarts as a standby."""
    logging.getLogger("molstream_operator").error("Lost the leadership: %s; exiting", reason)
    os._exit(1)


if __name__ == "__main__":
    main(prog_name="python -m molstream_operator")
