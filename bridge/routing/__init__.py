"""Patterns, templates and the router that turns a message into deliveries."""
