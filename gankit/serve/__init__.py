"""`gankit serve`: a local web page to watch runs train, explore a model and use it.

app.py      the routes: a thin face over the same functions as the CLI
runs.py     run folders as the page shows them (read without locks)
work.py     models and report pictures made once and kept; long jobs with progress and cancel
guard.py    Host/Origin checks and upload limits
pictures.py data URLs in, uint8 tensors, PNGs out
static/     the page: plain HTML, CSS and JavaScript modules, no build step, no CDN

Starlette and uvicorn come with the optional extra: pip install 'gankit[serve]'.
"""
