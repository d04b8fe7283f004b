"""The engines a split task runs on: this process, a Ray cluster, or Spark.

`run_jobs(task, jobs, engine, address)` calls `task(job)` for each job and returns the results in job order:
``local`` runs them here one after another; ``ray`` on a Ray cluster (``address`` "auto", "ray://host:port",
or none for a local one; Ray retries a task whose worker died); ``spark`` one partition per job
(``address`` a master URL such as "spark://host:7077" or "local[2]"; none is "local[*]";
spark.task.maxFailures retries a failed one). Neither engine is imported unless asked for.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, Literal

from ..errors import SftDataError

Engine = Literal["local", "ray", "spark"]
ENGINES = ("local", "ray", "spark")


def run_jobs(task: Callable[[Any], dict[str, Any]], jobs: Sequence[Any], engine: Engine,
             address: str | None = None) -> list[dict[str, Any]]:
    if engine == "local":
        return [task(job) for job in jobs]
    if engine == "ray":
        ray = _ray(address)
        remote = ray.remote(max_retries=3)(task)  # a worker that dies mid-task: the task runs again
        return ray.get([remote.remote(job) for job in jobs])
    if engine == "spark":
        return _spark(task, jobs, address)
    raise SftDataError(f"unknown engine {engine!r}", hint=f"use one of {', '.join(ENGINES)}")


def _ray(address: str | None) -> Any:
    try:
        import ray
    except ImportError:
        raise SftDataError("--engine ray needs Ray", hint="pip install 'sftdata[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 **({} if address else {"num_cpus": os.cpu_count()}))
    return ray


def _spark(task: Callable[[Any], dict[str, Any]], jobs: Sequence[Any], address: str | None) -> list[dict[str, Any]]:
    """One Spark partition per split (spark.task.maxFailures retries a failed one); the driver collects the
    counts."""
    spark = _spark_session(address)
    return spark.sparkContext.parallelize(list(jobs), max(1, len(jobs))).map(task).collect()


def _spark_session(address: str | None) -> Any:
    """Python workers run this interpreter unless PYSPARK_PYTHON says otherwise."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise SftDataError("--engine spark needs PySpark (and Java 17+)", hint="pip install 'sftdata[spark]'") from None
    import sys

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName("sftdata").master(address or "local[*]")
    builder = builder.config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
    return builder.config("spark.task.maxFailures", "4").getOrCreate()


def run_shuffle(map_task: Callable[[Any], tuple[dict[str, Any], list[Any]]],
                reduce_task: Callable[[int, list[Any]], Any], jobs: Sequence[Any], partitions: int, engine: Engine,
                address: str | None = None) -> tuple[list[dict[str, Any]], list[Any]]:
    """A map over the jobs whose outputs are shuffled by partition through the engine, then reduced.

    `map_task(job)` returns (its result, one bucket per partition); `reduce_task(p, buckets)` gets partition p's
    bucket from every map task. Returns the map results (in job order) and the reduce results (in partition
    order). On Ray the buckets move through the object store (map tasks with one return per partition), on
    Spark through its shuffle (partitionBy), locally through this process."""
    if engine == "local":
        mapped = [map_task(job) for job in jobs]
        return ([m[0] for m in mapped],
                [reduce_task(p, [m[1][p] for m in mapped]) for p in range(partitions)])
    if engine == "ray":
        ray = _ray(address)

        def split_outputs(job: Any) -> tuple[Any, ...]:
            result, buckets = map_task(job)
            return (result, *buckets)

        def reduce_buckets(partition: int, *buckets: Any) -> Any:  # Ray resolves top-level refs to their values
            return reduce_task(partition, list(buckets))

        mapper = ray.remote(num_returns=partitions + 1, max_retries=3)(split_outputs)
        reducer = ray.remote(max_retries=3)(reduce_buckets)
        refs = [mapper.remote(job) for job in jobs]
        reduced = [reducer.remote(p, *[r[p + 1] for r in refs]) for p in range(partitions)]
        return ray.get([r[0] for r in refs]), ray.get(reduced)
    if engine == "spark":
        context = _spark_session(address).sparkContext
        mapped = context.parallelize(list(jobs), max(1, len(jobs))).map(map_task).persist()
        try:
            results = mapped.map(lambda m: m[0]).collect()
            keyed = mapped.flatMap(lambda m: list(enumerate(m[1]))).partitionBy(partitions, lambda p: p)
            reduced = keyed.mapPartitionsWithIndex(lambda p, items: [(p, reduce_task(p, [b for _, b in items]))])
            return results, [value for _, value in sorted(reduced.collect(), key=lambda pv: pv[0])]
        finally:
            mapped.unpersist()
    raise SftDataError(f"unknown engine {engine!r}", hint=f"use one of {', '.join(ENGINES)}")
