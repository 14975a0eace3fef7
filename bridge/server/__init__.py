"""The WebSocket server side: the demo upstream and replay servers, and the listener and peer
molecules they share with the websocket sink (bridge.sinks.websocket)."""
