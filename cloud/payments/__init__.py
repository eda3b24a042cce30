"""Payment providers: how a provider's webhook is verified and read (`razorpay.py`)."""
