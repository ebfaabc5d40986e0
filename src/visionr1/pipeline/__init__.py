"""The pipeline recipe and ``visionr1 run``: data -> cold start -> training stages -> evaluation, from one file.

Parts: ``config`` (the :class:`Pipeline` schema, composed of the sections' own schemas, and the loaders
``train`` and ``coldstart`` use to take their section of it), ``run`` (:func:`main`, each section resumable),
``cli`` (the command). Heavy imports happen inside.
"""
