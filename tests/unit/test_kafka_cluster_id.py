"""The dev Kafka's cluster id: the storage tool takes `-t <id>`, so an id must not look like
an option (the bench's broker once failed to format on one draw in 64)."""
import base64
import uuid

from molstream_dev import kafka


def test_an_id_that_would_start_with_a_dash_is_drawn_again(monkeypatch) -> None:
    dash_first = uuid.UUID(bytes=b"\xf8" + bytes(15))  # 0b111110.. is '-' in url-safe base64
    assert base64.urlsafe_b64encode(dash_first.bytes).startswith(b"-")
    draws = iter([dash_first, dash_first, uuid.UUID(int=1)])
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: next(draws))

    cluster_id = kafka.new_cluster_id()

    assert cluster_id == base64.urlsafe_b64encode(uuid.UUID(int=1).bytes).decode().rstrip("=")
    assert len(cluster_id) == 22
