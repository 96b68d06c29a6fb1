"""Bolt listeners: acknowledge at once, parse, call, render, respond. Kept thin on purpose."""
