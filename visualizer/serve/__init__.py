"""`python -m visualizer serve`: a local app around the report pipeline.

`app.py` routes, `jobs.py` the one model thread and its bounded FIFO queue, `work.py` what each job
runs (the pipeline's own functions), `security.py` the host/token/origin/size checks, `events.py`
the server-sent event stream.

What this package does not do: compute or render anything the CLI does not (every page it shows is
a report folder written by pipeline.py / store/compare.py).
"""
