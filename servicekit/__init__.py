"""What all four services share that is not the jobs contract: one logging setup (LOG_FORMAT,
LOG_LEVEL, the request id on every line, secrets masked) and the other plumbing of a service
process. Each service imports it; no service imports another service."""
