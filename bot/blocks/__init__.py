"""Block Kit messages built from plain data. Nothing here does I/O or reads the clock."""
