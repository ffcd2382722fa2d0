"""Jobs per second through one in-process worker against the embedded PRSM engine.

    uv run python scripts/bench_jobs.py --jobs 2000 --concurrency 100

Needs the Redis of REDIS_URL. It queues the jobs first, then times one worker draining them,
under a key prefix of its own that it deletes afterwards.

The jobs are spread over `--users` PRSM users (`bench-0`, `bench-1`...), as the engine grants
each user 100 FTNS.
{% if cookiecutter.use_auth %}
They are charged to those users' quotas: create them first, or every job fails on its quota.
{% endif %}
"""

import argparse
import asyncio
import time
import uuid

from redis.asyncio import Redis
from taskiq.receiver import Receiver

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.jobs.worker import create_worker_broker
from {{ cookiecutter.package_name }}.prsm.answerer import PRSMQuery
from {{ cookiecutter.package_name }}.services import open_services


async def bench(jobs: int, concurrency: int, users: int) -> None:
    prefix = f"bench-{uuid.uuid4().hex}:"
    settings = Settings(prsm_api_url="", redis_key_prefix=prefix)
    redis = Redis.from_url(settings.redis_url)
    async with open_services(settings) as services:
        try:
            queued = [
                await services.jobs.submit(
                    PRSMQuery(user_id=f"bench-{n % users}", prompt=f"What is {n}+1?"),
                    owner=f"bench-{n % users}",
                )
                for n in range(jobs)
            ]
            broker = create_worker_broker(settings)
            broker.is_worker_process = True
            await broker.startup()
            stream = broker.queue_name
            started = time.perf_counter()
            stop = asyncio.Event()
            receiver = Receiver(broker, max_async_tasks=concurrency, run_startup=False)
            listening = asyncio.create_task(receiver.listen(stop))
            while True:
                if not await redis.xlen(stream):
                    break  # every job acknowledged: the stream holds none
                await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - started
            stop.set()
            await listening
            await broker.shutdown()
            done = [await services.jobs.get(job.job_id) for job in queued]
            completed = sum(1 for job in done if job is not None and job.status == "completed")
            print(
                f"{jobs} jobs, {concurrency} at a time: {elapsed:.2f} s, "
                f"{jobs / elapsed:.0f} jobs/s ({completed} completed, {jobs - completed} failed)"
            )
        finally:
            keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
            if keys:
                await redis.delete(*keys)
            await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=100, help="jobs run at once")
    parser.add_argument("--users", type=int, default=50, help="PRSM users the jobs ask for")
    args = parser.parse_args()
    asyncio.run(bench(args.jobs, args.concurrency, args.users))


if __name__ == "__main__":
    main()
