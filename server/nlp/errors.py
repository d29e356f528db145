"""Errors of the task endpoints; each one says which field or model is at fault."""

from __future__ import annotations

from indexer.errors import ConflictError, InputError


class TaskInputError(InputError):
    """Input the schema cannot express a rule for (duplicate labels, a template without {}): 400."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field)


class ClassifierExistsError(ConflictError):
    """A named classifier already exists and the request did not ask to replace it."""


class ModelMismatchError(ConflictError):
    """A classifier trained with another embedding model than the one being served."""
