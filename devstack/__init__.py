"""The local stack without Docker: NATS and the four services as processes."""
