"""Loading and validating the YAML config against the JSON Schema."""
