"""The upstream side: one reconnecting WebSocket client per configured source."""
