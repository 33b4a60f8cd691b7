"""Interfaces the saga's use cases need from the outside world: storage, messaging, time."""
