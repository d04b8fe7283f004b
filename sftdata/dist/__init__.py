"""Past one machine: commands split into byte ranges of their inputs and run on Ray or Spark.

splits (the planner: JSON Lines byte ranges with their first line number and the file's codec, other
files whole), engines (this process, Ray, Spark), run (the per-split task that runs the same library code as a
local run, and the driver that writes part files, one _meta.json and, on request, the single files a
local run writes). May import pipeline and below; only api and cli import it.
"""
