"""The batch export as the domain knows it: its fields, its checks and what follows from it."""
