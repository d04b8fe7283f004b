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
        try:
            import ray
        except ImportError:
            raise SftDataError("--engine ray needs Ray", hint="pip install 'sftdata[ray]'") from None
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     **({} if address else {"num_cpus": os.cpu_count()}))
        remote = ray.remote(max_retries=3)(task)  # a worker that dies mid-task: the task runs again
        return ray.get([remote.remote(job) for job in jobs])
    if engine == "spark":
        return _spark(task, jobs, address)
    raise SftDataError(f"unknown engine {engine!r}", hint=f"use one of {', '.join(ENGINES)}")


def _spark(task: Callable[[Any], dict[str, Any]], jobs: Sequence[Any], address: str | None) -> list[dict[str, Any]]:
    """One Spark partition per split (spark.task.maxFailures retries a failed one); the driver collects the
    counts. Python workers run this interpreter unless PYSPARK_PYTHON says otherwise."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise SftDataError("--engine spark needs PySpark (and Java 17+)", hint="pip install 'sftdata[spark]'") from None
    import sys

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName("sftdata").master(address or "local[*]")
    spark = builder.config("spark.ui.enabled", "false").config("spark.task.maxFailures", "4").getOrCreate()
    return spark.sparkContext.parallelize(list(jobs), max(1, len(jobs))).map(task).collect()
