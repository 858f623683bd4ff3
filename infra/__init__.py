"""modelgate infra."""
