"""Domain objects: versioned, with changed-field tracking, serializable over the bus."""
