"""Where messages go: stdout, files and MQTT."""
