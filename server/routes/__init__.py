"""HTTP route handlers, one module per area; each handler calls into the library."""
