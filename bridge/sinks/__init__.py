"""Where messages go: stdout, files, MQTT and local websocket clients."""
