"""The application layer: the command line, the service and its worker, the server client,
doctor, demo and bench. It wires the layers below together; nothing below imports it
(the import contract in `pyproject.toml`, checked by `make test`)."""
