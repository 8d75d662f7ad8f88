"""Integrations with home-automation systems: MQTT and Home Assistant discovery (paho imported lazily)."""
