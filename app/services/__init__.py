"""Use cases: the only place with business rules. Raise AppError subclasses, never HTTP."""
