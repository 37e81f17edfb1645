"""Route modules; each handler's name is its OpenAPI operationId."""
