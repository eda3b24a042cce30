"""E-mail: message templates, the SMTP adapter, and the sender that empties the outbox."""
