"""The molstream operator (kopf): IngestRequest → fetcher Job → status from Kafka events.

Importing the package registers the handlers; ``python -m molstream_operator`` runs them.
"""

from . import ingestrequests, jobs, startup

__all__ = ["ingestrequests", "jobs", "startup"]
