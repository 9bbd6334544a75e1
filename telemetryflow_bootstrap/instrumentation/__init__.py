"""Auto-instrumentation: the registry of library patches and one module per library."""
