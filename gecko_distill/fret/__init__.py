"""The Gecko data pipeline: generate, retrieve, relabel, chained by :func:`build_fret`."""
