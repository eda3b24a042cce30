"""The gateway daemon and the field technician's command-line tools."""
