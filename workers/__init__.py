"""Long-lived worker processes: they hold models, the web tier never does."""
