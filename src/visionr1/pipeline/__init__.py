"""The pipeline recipe and ``visionr1 run``: data -> cold start -> training stages -> evaluation, from one file.

Parts: ``config`` (the :class:`PipelineRecipe` schema, composed of the sections' own schemas), ``load`` (what
``train`` and ``coldstart`` take of any recipe file: their own kind, or their section of a pipeline),
``run`` (:func:`main`, each section resumable), ``cli`` (the command). Files are read by
:mod:`visionr1.config.loader`. Heavy imports happen inside.
"""
