"""HTTP for providers: the transport seam, the client (auth, JSON, errors), retries, SSE."""
