"""The `kpibot` command line: main() and one module per command family."""
