"""The scan engine: a repository job's files cut into pieces on a JetStream work queue, checked by
any number of workers, findings stored per piece in KV (#21)."""
