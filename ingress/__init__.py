"""modelgate ingress."""
