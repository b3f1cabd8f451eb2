"""The batch export as the domain knows it: its fields, declared once, its checks and what follows from it.

`export.py` holds the shape (`ExportFields`, what a client sets; `BatchExport`, a saved export) and its behaviour
(its interval spec, the events it selects); `validation.py` checks a body in full. Storage maps its rows to the
shape and the API maps it to and from JSON; this package imports nothing from `store/`, `api/` or `services/`.
"""
