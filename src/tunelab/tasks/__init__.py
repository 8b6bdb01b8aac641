"""Tasks: what differs between heads. See ``tunelab.tasks.base.Task`` for the interface."""

from tunelab.tasks.base import Task
from tunelab.tasks.causal_lm import CausalLM
from tunelab.tasks.classification import SequenceClassification
from tunelab.tasks.multiple_choice import MultipleChoice
from tunelab.tasks.question_answering import QuestionAnswering
from tunelab.tasks.regression import Regression
from tunelab.tasks.seq2seq import Seq2Seq
from tunelab.tasks.token_classification import TokenClassification

__all__ = [
    "Task",
    "CausalLM",
    "MultipleChoice",
    "SequenceClassification",
    "QuestionAnswering",
    "Regression",
    "Seq2Seq",
    "TokenClassification",
]
