"""Code used by both the web tier and the workers.

Nothing in here imports ``web`` or ``workers``; heavy libraries (scikit-learn,
numpy) are imported only by the modules that need them, so the web process
stays small.
"""
