"""modelgate predictor."""
