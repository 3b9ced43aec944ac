"""The publishing side of updates (``aegis-repo``): never imported by the engine at run time."""
