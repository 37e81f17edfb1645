"""Worker tests: execution of claimed runs, the worker loop, and real worker processes."""
