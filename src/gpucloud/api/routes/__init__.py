"""The /v4 routes, one module per Linode resource family. Routes parse, call a service, shape."""
