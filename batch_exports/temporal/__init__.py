"""The Temporal client side: connecting, starting and cancelling workflows, and the export's Schedule."""
