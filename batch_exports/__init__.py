"""The core of the service, shared by the gateway and the worker: `runtime` (the composition root), `store/`
(one module per table), `services/` (use cases), `temporal/` (the client side), `models` (request bodies),
`settings` and `crypto`."""
