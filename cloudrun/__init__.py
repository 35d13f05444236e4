"""The Cloud Run shell: a Quart app over core.Relay."""
