"""The ``swagdigits`` command: run, train, inspect and evaluate the service."""
