"""PRSM: the upstream AI network, its client, and an embedded engine for running without one."""
