"""The HTTP API: FastAPI app, routes, schemas, dependency aliases and the one error mapping."""
