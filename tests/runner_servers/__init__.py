"""Servers of known behaviour for the runner's end-to-end tests (started by path with
``--server-cmd``): they print the contract's ``listening`` line and nothing else matters."""
