"""Graphs hosted by default (the examples) and the registry that loads graphs by name."""
