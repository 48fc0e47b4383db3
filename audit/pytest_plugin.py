"""pytest plugin: gate a release on an audit run (``pytest --audit-run RUN_DIR``)."""
