"""The commands: each parses its arguments, calls a plain function and prints (``mtbench <cmd>``)."""
