"""Home Assistant MQTT discovery: the bridge and its sources as devices with their health."""
