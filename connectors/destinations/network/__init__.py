"""The way out: which addresses a destination may reach (`hosts`), HTTP clients that connect only to them
(`egress`), the forward proxy that clients in native code are given (`proxy`), and endpoint URLs and connection
strings read as the policy reads them (`endpoints`)."""
