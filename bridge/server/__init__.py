"""The WebSocket server side: the demo upstream and `ws-bridge replay`, with the listener and
per-client peer they share."""
