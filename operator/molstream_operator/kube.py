"""A small Kubernetes client for what the operator does outside kopf's own machinery.

Plain dicts in and out over the official client's authenticated connection pool (in-cluster
service account, else ``$KUBECONFIG``). Status updates are read-modify-write with the object's
resourceVersion as precondition, retried on conflicts: the kopf handlers, the Job handler and the
Kafka consumer thread all update the same status without stepping on each other.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import kubernetes

from .models import GROUP, KIND, PLURAL, VERSION, IngestRequestRef
from .status import Change, Note, format_time, merge_patch

__all__ = ["ApiError", "Kube", "TransientApiError"]

logger = logging.getLogger(__name__)

_COMPONENT = "molstream-operator"
_TIMEOUT = (5.0, 30.0)
_CONFLICT_RETRIES = 8
_METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"


class ApiError(Exception):
    def __init__(self, status: int, reason: str, body: str = "") -> None:
        detail = body
        try:
            detail = json.loads(body).get("message") or body
        except (ValueError, AttributeError):
            pass
        super().__init__(f"{status} {reason}: {detail}"[:2000])
        self.status = status
        self.reason = reason
        self.detail = str(detail)


class TransientApiError(ApiError):
    """Worth retrying later: the API server is unreachable, overloaded or failing."""


class Kube:
    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self._api = api_client

    @classmethod
    def from_environment(cls) -> Kube:
        configuration = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config(client_configuration=configuration)
        return cls(kubernetes.client.ApiClient(configuration))

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike[str]) -> Kube:
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(
            config_file=os.fspath(path), client_configuration=configuration
        )
        return cls(kubernetes.client.ApiClient(configuration))

    def close(self) -> None:
        self._api.close()

    # --- raw requests ----------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        query: Mapping[str, str] | None = None,
        accept: str = "application/json",
        timeout: tuple[float, float] = _TIMEOUT,
    ) -> dict[str, Any]:
        """``timeout``: (connect, read) seconds; the lease's renewals need shorter ones."""
        headers = {"Accept": accept, "Content-Type": content_type}
        method, url, headers, _, _ = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=list((query or {}).items()) or None,
            header_params=headers,
            auth_settings=["BearerToken"],
        )
        try:
            # The REST layer serializes the body as JSON for every */json and */*+json type.
            response = self._api.call_api(
                method, url, header_params=headers, body=body, _request_timeout=timeout
            )
            data = response.read()
        except kubernetes.client.exceptions.ApiException as exc:
            raise TransientApiError(int(exc.status or 0), str(exc.reason or "")) from None
        except OSError as exc:  # urllib3 errors are OSErrors
            raise TransientApiError(0, type(exc).__name__, str(exc)) from None
        text = data.decode("utf-8", "replace") if data else ""
        if response.status >= 500 or response.status == 429:
            raise TransientApiError(response.status, response.reason or "", text)
        if response.status >= 400:
            raise ApiError(response.status, response.reason or "", text)
        return json.loads(text) if text else {}

    def _get(self, path: str) -> dict[str, Any] | None:
        try:
            return self.request("GET", path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    # --- IngestRequests --------------------------------------------------------------------------

    @staticmethod
    def _ir_path(namespace: str, name: str) -> str:
        return (
            f"/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace, safe='')}"
            f"/{PLURAL}/{quote(name, safe='')}"
        )

    def get_ingestrequest(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(self._ir_path(namespace, name))

    def update_status(
        self,
        namespace: str,
        name: str,
        compute: Callable[[dict[str, Any]], Change | None],
    ) -> tuple[dict[str, Any] | None, Change | None]:
        """Read the IngestRequest, ``compute`` its next status, patch it if it changed.

        Returns the body as read last and the change applied (None when nothing changed or
        the object is gone). Conflicting writes are retried with a fresh read.
        """
        for _ in range(_CONFLICT_RETRIES):
            body = self.get_ingestrequest(namespace, name)
            if body is None:
                return None, None
            current = dict(body.get("status") or {})
            change = compute(body)
            if change is None:
                return body, None
            patch = merge_patch(current, change.status)
            if not patch:
                return body, None
            try:
                self.request(
                    "PATCH",
                    self._ir_path(namespace, name) + "/status",
                    body={
                        "metadata": {"resourceVersion": body["metadata"]["resourceVersion"]},
                        "status": patch,
                    },
                    content_type="application/merge-patch+json",
                )
            except ApiError as exc:
                if exc.status == 409:
                    time.sleep(0.05)
                    continue
                if exc.status == 404:
                    return None, None
                raise
            for note in change.notes:
                self.post_event(IngestRequestRef.from_body(body), note)
            return body, change
        raise TransientApiError(409, "Conflict", f"status of {namespace}/{name} kept changing")

    # --- Secrets: their labels only ------------------------------------------------------------

    def secret_labels(self, namespace: str, name: str) -> dict[str, str] | None:
        """The labels of a Secret, None when there is none of that name. Only its metadata is
        asked for (PartialObjectMetadata): the Secret's data never reaches the operator."""
        found = self._get_metadata(
            f"/api/v1/namespaces/{quote(namespace, safe='')}/secrets/{quote(name, safe='')}"
        )
        if found is None:
            return None
        return dict((found.get("metadata") or {}).get("labels") or {})

    def _get_metadata(self, path: str) -> dict[str, Any] | None:
        try:
            return self.request("GET", path, accept=_METADATA_ONLY)
        except ApiError as exc:
            if exc.status == 404:
                return None
            if exc.status == 403:
                raise PermissionError(f"the operator may not read {path} ({exc.detail})") from None
            raise

    # --- Jobs and CronJobs -----------------------------------------------------------------------

    @staticmethod
    def _batch_path(namespace: str, plural: str, name: str | None = None) -> str:
        path = f"/apis/batch/v1/namespaces/{quote(namespace, safe='')}/{plural}"
        return path if name is None else f"{path}/{quote(name, safe='')}"

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(self._batch_path(namespace, "jobs", name))

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        """Create a Job or CronJob; None if one of that name already exists (409)."""
        plural = {"Job": "jobs", "CronJob": "cronjobs"}[obj["kind"]]
        namespace = obj["metadata"]["namespace"]
        try:
            return self.request("POST", self._batch_path(namespace, plural), body=obj)
        except ApiError as exc:
            if exc.status == 409:
                return None
            raise

    def patch_job(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        return self.request(
            "PATCH",
            self._batch_path(namespace, "jobs", name),
            body=patch,
            content_type="application/merge-patch+json",
        )

    def get_cronjob(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(self._batch_path(namespace, "cronjobs", name))

    def patch_cronjob(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        return self.request(
            "PATCH",
            self._batch_path(namespace, "cronjobs", name),
            body=patch,
            content_type="application/merge-patch+json",
        )

    def delete_cronjob(self, namespace: str, name: str) -> bool:
        try:
            self.request(
                "DELETE",
                self._batch_path(namespace, "cronjobs", name),
                body={"propagationPolicy": "Background"},
            )
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    # --- Kubernetes Events -----------------------------------------------------------------------

    def post_event(self, ref: IngestRequestRef, note: Note) -> None:
        """Post a core/v1 Event on the IngestRequest; failures are logged, never raised."""
        now = format_time(time.time())
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{ref.name[:200]}.", "namespace": ref.namespace},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": KIND,
                "name": ref.name,
                "namespace": ref.namespace,
                "uid": ref.uid,
            },
            "type": note.type,
            "reason": note.reason[:128],
            "message": note.message[:1024],
            "action": note.reason[:128],
            "source": {"component": _COMPONENT},
            "reportingComponent": _COMPONENT,
            "reportingInstance": os.environ.get("HOSTNAME") or socket.gethostname(),
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.request(
                "POST", f"/api/v1/namespaces/{quote(ref.namespace, safe='')}/events", body=event
            )
        except ApiError as exc:
            logger.warning(
                "Could not post the event %s on %s/%s: %s",
                note.reason,
                ref.namespace,
                ref.name,
                exc,
            )
