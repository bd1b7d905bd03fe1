"""The `kpibot` command line: main (the parser), support (what every command shares), one module per command family."""
