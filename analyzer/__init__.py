"""The analyzer service: starts repository jobs and reviews one function of a fetched repository.

`python -m analyzer` serves `analyzer.app.create_app()`; docs/analyzer.md describes it.
"""
