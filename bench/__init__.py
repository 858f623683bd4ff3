"""modelgate bench."""
