"""Tasks: what differs between heads. See ``tunelab.tasks.base.Task`` for the interface."""

from tunelab.tasks.base import Task
from tunelab.tasks.classification import SequenceClassification
from tunelab.tasks.regression import Regression

__all__ = ["Task", "SequenceClassification", "Regression"]
