"""The command line: a thin shell that parses, calls one service, renders the result."""
