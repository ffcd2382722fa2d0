"""Durable PRSM jobs: submitted over HTTP, queued on a Redis stream, run by taskiq workers."""
