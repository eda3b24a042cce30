"""Meter protocols: Modbus (RTU/TCP), DLMS/COSEM and MQTT readers producing `shared.Sample`s."""
