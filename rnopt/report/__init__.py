"""Renderings of result records (rnopt.results): loading and merging JSON files, tables, plots, Markdown,
HTML, and the run-to-run comparison."""
