"""Chat plumbing: routers, the typed handler context, conversations and the dispatcher."""
