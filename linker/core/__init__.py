"""Pure rules of Linker: no I/O, no store, lookup, HTTP or database imports."""
