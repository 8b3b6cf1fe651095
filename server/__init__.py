"""The cost oracle service: gRPC handlers, the persistent cache and the latency workers."""
