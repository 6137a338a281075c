"""The fetcher: a FastStream worker that downloads repositories for analyzer jobs.

It consumes FetchRequests from the JetStream work queue, streams the GitHub tarball, keeps the
Python files (in memory, never extracted), stores them in the Object Store and updates the job
in KV. Entry point: `python -m fetcher`; the app factory is `fetcher.app.create_app`.
"""
