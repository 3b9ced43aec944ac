"""Scanning: walk the tree, sniff types, unpack containers within limits, run detectors."""
