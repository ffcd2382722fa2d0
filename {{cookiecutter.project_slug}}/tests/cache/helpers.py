from redis.asyncio import Redis

from {{ cookiecutter.package_name }}.config import Settings


async def cache_keys(redis: Redis, settings: Settings) -> list[str]:
    pattern = f"{settings.redis_key_prefix}cache:*"
    return [key.decode() async for key in redis.scan_iter(match=pattern)]
