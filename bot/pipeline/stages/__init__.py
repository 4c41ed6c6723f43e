"""The pipeline stages, in the order the chain runs them."""
