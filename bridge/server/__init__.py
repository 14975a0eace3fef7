"""The WebSocket server side: the demo upstream."""
