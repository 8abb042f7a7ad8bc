"""Quality gates: Great Expectations checkpoints from the ``expectations/`` file context."""
