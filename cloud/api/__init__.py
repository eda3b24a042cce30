"""HTTP routes, one module per resource; they validate, call a service, and shape the answer."""
