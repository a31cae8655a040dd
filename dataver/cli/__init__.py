"""The command-line interface: one module per noun, each a few lines per command over the Client."""
