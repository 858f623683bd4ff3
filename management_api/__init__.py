"""modelgate management_api."""
