"""The service contract as plain Python: what a request asks about and what it is answered
(``types``, ``budget``, ``spaces``, ``results``), the service's errors with
their ``google.rpc.Status`` mapping (``errors``; the clients' typed errors are read from those
statuses), and the one conversion between those and the
generated messages (``convert``, with the wire-level network reader in ``wire``).

It imports only protobuf, the generated stubs and the engine's data modules, so a remote client
stands on it without the server's cache, SQLAlchemy or torch (``tests/test_layers.py``)."""
