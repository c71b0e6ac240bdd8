"""The `kb` command line: the top of the stack, the only place that starts the portal or a worker."""
