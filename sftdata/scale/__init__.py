"""Past one machine: commands split into byte ranges of their inputs and run on Ray or Spark.

splits (the planner: JSON Lines byte ranges with their first line number and the file's codec, other
files whole), engines (this process, Ray, Spark: tasks, and a map-shuffle-reduce), driver (the output
folder, counts summed, one _meta.json, --concat), run (convert per split), commands (render, filter and
pretokenize per split, each task running the command's own function on its split), dedup (sketch per
split, band keys through the engine's shuffle, verify, the local keep rule on the driver, write per
split). May import curate, pipeline and below; only api imports it.
"""
