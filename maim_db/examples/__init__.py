"""The example service and bot (``maim-db demo`` runs them; ``examples/`` has runnable copies)."""
