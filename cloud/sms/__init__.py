"""Text messages: composing them, the signed-webhook provider adapter, and the sender that
empties the SMS outbox (`cloud.services.sms_outbox`)."""
