"""Per-strategy echo servers behind one interface (see DESIGN.md, "Server contract")."""
