"""circexport exporter: the command line and the static site build."""
