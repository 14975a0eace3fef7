"""ws-bridge: pipe WebSocket feeds into MQTT, files and stdout, declared in one YAML file."""

__version__ = "0.1.0"
