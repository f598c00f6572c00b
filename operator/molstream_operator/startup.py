"""Operator lifecycle: settings and clients at startup (into ``kopf.Memo``), closed at cleanup."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from .config import OperatorConfig
from .consumer import EventConsumer
from .kube import Kube
from .manifests import LABEL_IR
from .service import IngestService

__all__ = ["cleanup", "events_probe", "leadership_probe", "startup"]


def configure(settings: kopf.OperatorSettings) -> None:
    """kopf settings for least privilege and a clean status."""
    # Progress and last-handled state in annotations: the status belongs to the schema. Not
    # under molstream.io/: kopf leaves annotations under its storage prefix out of its diffs,
    # and molstream.io/rerun must trigger the update handler.
    prefix = "operator.molstream.io"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=prefix)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=prefix, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{prefix}/finalizer"
    # No peering objects (one replica, or one leader of a Lease: leadership, before kopf
    # starts); no cluster-wide scan of CRDs and namespaces.
    settings.peering.standalone = True
    settings.scanning.disabled = True
    # Watch only our Jobs, filtered by the API server.
    settings.watching.label_selectors["batch", "v1", "jobs"] = LABEL_IR
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.posting.reporting_component = "molstream-operator"
    settings.posting.event_name_prefix = "molstream-"
    settings.networking.request_timeout = 60


@kopf.on.startup()
def startup(
    settings: kopf.OperatorSettings, memo: kopf.Memo, logger: logging.Logger, **_: Any
) -> None:
    configure(settings)
    config: OperatorConfig = memo.get("config") or OperatorConfig.from_env()
    kube = Kube.from_environment()
    memo.config = config
    memo.kube = kube
    memo.service = IngestService(kube=kube, config=config)
    memo.consumer = None
    if config.kafka_bootstrap:
        memo.consumer = EventConsumer(
            bootstrap=config.kafka_bootstrap,
            topic=config.events_topic,
            group_id=config.group_id,
            handle=memo.service.on_event,
            security=config.kafka_security,
        )
        memo.consumer.start()
    else:
        logger.warning("MOLSTREAM_KAFKA_BOOTSTRAP is not set: the status follows the Jobs only")
    logger.info(
        "molstream operator started (events topic %s, allowed hosts: %s)",
        config.events_topic,
        ", ".join(config.allowed_hosts) or "any",
    )


@kopf.on.cleanup()
def cleanup(memo: kopf.Memo, **_: Any) -> None:
    consumer = memo.get("consumer")
    if consumer is not None:
        consumer.stop()
    kube = memo.get("kube")
    if kube is not None:
        kube.close()


@kopf.on.probe(id="events")
def events_probe(memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    consumer = memo.get("consumer")
    return consumer.health() if consumer is not None else {"enabled": False}


@kopf.on.probe(id="leadership")
def leadership_probe(memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    """Who we are and that we lead (a standby's endpoint says so too: leadership)."""
    elector = memo.get("elector")
    return elector.health() if elector is not None else {"enabled": False}
