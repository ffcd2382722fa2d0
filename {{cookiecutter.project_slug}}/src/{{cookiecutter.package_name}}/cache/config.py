from pydantic import BaseModel, Field

# Part of every cache key: bump it when the stored entry's shape or the key's content changes,
# and entries written by older code are simply never read again (their TTL clears them).
CACHE_SCHEMA_VERSION = "v1"


class CacheSettings(BaseModel):
    cache_ttl_seconds: float = Field(
        default=300, gt=0, description="How long an answer stays in the cache."
    )
    cache_timeout_ms: int = Field(
        default=100,
        gt=0,
        description="Longest wait for one cache lookup or store; past it the query goes uncached.",
    )
    cache_outage_log_interval_seconds: float = Field(
        default=60, gt=0, description="At most one 'cache unavailable' warning per interval."
    )
