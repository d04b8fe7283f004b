"""The engines a split task runs on: this process, a Ray cluster, or Spark.

`run_jobs(task, jobs, engine, address)` calls `task(job)` for each job and returns the results in job order:
``local`` runs them here one after another; ``ray`` on a Ray cluster (``address`` "auto", "ray://host:port",
or none for a local one; Ray retries a task whose worker died); ``spark`` one partition per job
(``address`` a master URL such as "spark://host:7077" or "local[2]"; none is "local[*]";
spark.task.maxFailures retries a failed one). Neither engine is imported unless asked for.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable, Sequence
from typing import Any, Literal

from ..errors import OptionError, SftDataError
from .probes import check_address

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


def check_engine(engine: Engine, address: str | None) -> None:
    """Fail in seconds, with one line naming the address, what was tried and what to install, before any work
    starts: the engine's package, Java for Spark, and a cluster address that answers."""
    if engine == "local":
        return
    if engine not in ENGINES:
        raise OptionError("is not an engine", option="engine", value=engine, hint=f"use one of {', '.join(ENGINES)}")
    if engine == "ray":
        _need("ray", "the ray engine needs Ray", "pip install 'sftdata[ray]'")
        if address and address.startswith("ray://"):
            _need("grpc", "a ray:// address uses Ray Client, which needs ray[client]", "pip install 'sftdata[ray]'")
            check_address(address, address.removeprefix("ray://"), 10001, "the Ray Client server", "grpc")
        elif address == "auto" and not _ray_running():
            raise OptionError("no Ray cluster is running on this machine (tried the address file Ray writes under "
                              f"{_ray_temp()})", option="address", value=address,
                              hint="start one with `ray start --head`, name it as ray://host:port, or leave "
                                   "address out to start a local one")
        elif address and address != "auto":
            check_address(address, address, 6379, "the Ray cluster's GCS", "grpc")
        return
    _need("pyspark", "the spark engine needs PySpark (and Java 17+)", "pip install 'sftdata[spark]'")
    if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        raise OptionError("Spark needs Java 17 or later, and none was found (no java on PATH, no JAVA_HOME)",
                          option="engine", value=engine, hint="install a JRE, e.g. openjdk-17-jre-headless")
    if address and address.startswith("spark://"):
        for hostport in address.removeprefix("spark://").split(","):
            check_address(address, hostport, 7077, "the Spark master", "spark")


def _need(module: str, message: str, hint: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise SftDataError(message, hint=hint)


def _ray_temp() -> str:
    return os.path.join(os.environ.get("RAY_TMPDIR", "/tmp"), "ray")


def _ray_running() -> bool:
    """Whether `address="auto"` finds a cluster: Ray reads it from ray_current_cluster in its temp folder."""
    return bool(os.environ.get("RAY_ADDRESS")) or os.path.isfile(os.path.join(_ray_temp(), "ray_current_cluster"))


def _ray(address: str | None) -> Any:
    try:
        import ray
    except ImportError:
        raise SftDataError("the ray engine needs Ray", hint="pip install 'sftdata[ray]'") from None
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     **({} if address else {"num_cpus": os.cpu_count()}))
        except Exception as error:  # whatever Ray raises on connecting is one line, not a traceback
            raise OptionError(f"Ray could not connect ({_first_line(error)})", option="address", value=address) \
                from None
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
        raise SftDataError("the spark engine needs PySpark (and Java 17+)", hint="pip install 'sftdata[spark]'") from None
    import sys

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName("sftdata").master(address or "local[*]")
    builder = builder.config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
    try:
        return builder.config("spark.task.maxFailures", "4").getOrCreate()
    except Exception as error:  # a Py4J or Java error on starting is one line, not a trace
        raise OptionError(f"Spark could not start ({_first_line(error)})", option="address",
                          value=address or "local[*]") from None


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__


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
