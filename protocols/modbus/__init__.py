"""Modbus RTU/TCP: register profiles as data files, the value codec, read plans and the reader."""
