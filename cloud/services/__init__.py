"""Business logic: each module owns its tables and its SQL; routes call these, never SQL."""
