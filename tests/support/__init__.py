"""Support code the tests share (no test imports from another test): the services they start, the stack
under test, and helpers that drive it the way a client or an operator would."""
