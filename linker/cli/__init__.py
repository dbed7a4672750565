"""The `linker` command line: the same services the dashboard calls."""
