"""MQTT: the embedded broker used when none is configured, and (later) the MQTT meter reader."""
