"""Building: load → normalize → chunk → embed → write a new generation, whole or incrementally.

    builder      IndexBuilder: plans the changes against the live generation and publishes a new one
    distributed  preparing documents on a Ray cluster
    writes       single-document writes into a live index (PUT / DELETE /documents/{key})
    watching     keeping an index in step with a folder (--watch)
"""
