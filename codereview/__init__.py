"""codereview: the command line for people (reviews, function names, job events)."""
