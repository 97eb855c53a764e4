"""Sub-commands of the ``lrpilot`` CLI, one module each (imported only when run)."""
