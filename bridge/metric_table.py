"""Which snapshot field becomes which Prometheus family: the table, apart from the server."""

from __future__ import annotations

# (counter?, name without ws_bridge_ and _total, help, snapshot field, label of a Mapping's keys)
Family = tuple[bool, str, str, str, str | None]

SOURCE_FAMILIES: tuple[Family, ...] = (
    (True, "source_messages_received", "Frames received", "received", None),
    (True, "source_bytes_received", "Bytes received", "bytes", None),
    (True, "source_messages_forwarded", "Messages sent, per sink", "forwarded", "sink"),
    (True, "source_messages_dropped", "Messages dropped, by reason", "dropped", "reason"),
    (True, "source_messages_invalid", "Frames that were not valid JSON", "invalid", None),
    (True, "source_frames_undecodable", "Frames that frames could not decode, by reason",
     "undecodable", "reason"),
    (True, "source_rejections", "Refusals by the server (reject, close code, error frame)",
     "rejected", None),
    (True, "source_reconnects", "Reconnects, by reason", "reconnects", "reason"),
    (True, "source_rollovers", "Connections replaced by a successor subscribed first (rollover)",
     "rollovers", None),
    (True, "source_recovery", "Dedup, sequence and liveness events: duplicate, no_key, no_seq, "
     "gap, resubscribe", "recovery", "event"),
    (True, "source_messages_sent", "Messages sent upstream, the session's own included", "sent",
     None),
    (True, "source_messages_held", "Messages routes held back, by reason: filtered, unchanged, "
     "throttled, no_items; and keys forgotten (evicted)", "held", "reason"),
    (True, "source_outgoing_dropped", "Messages from MQTT not sent upstream, by reason",
     "outgoing_dropped", "reason"),
    (False, "source_connection_up", "A pool's connections: 1 when connected", "connections_up",
     "connection"),
    (True, "source_connection_reconnects", "A pool's reconnects, per connection",
     "connection_reconnects", "connection"),
    (False, "source_items", "A pool's items", "items", None),
    (False, "source_items_up", "A pool's items on connected connections, not refused",
     "items_up", None),
    (False, "source_last_message_age_seconds", "Since the last frame", "last_message_age", None),
    (False, "source_handshake_seconds", "Latency of the last handshake", "handshake_seconds", None),
    (False, "source_down_seconds", "Since the source stopped being connected; 0 while connected",
     "down_seconds", None),
    (False, "source_grace_seconds", "How long the source may be down and still count as ready "
     "(metrics.ready_grace)", "grace_seconds", None),
)
SINK_FAMILIES: tuple[Family, ...] = (
    (False, "sink_queue_depth", "Messages waiting in the queue", "queue_depth", None),
    (False, "sink_queue_limit", "The queue's bound (queue.max_messages)", "queue_limit", None),
    (False, "sink_outbox_oldest_age_seconds", "How long the oldest message has waited in the "
     "durable outbox", "oldest_age", None),
    (True, "sink_messages_published", "Messages published or written", "published", None),
    (True, "sink_errors", "Publish or write errors", "errors", None),
    (True, "sink_messages_dropped", "Messages dropped, by reason", "dropped", "reason"),
    (False, "sink_up", "1 when the target is reachable", "up", None),
    (False, "sink_publish_latency_seconds", "Recent publish latency", "publish_latency", None),
)
