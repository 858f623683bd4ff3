"""modelgate metrics_consumer."""
