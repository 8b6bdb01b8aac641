"""The Task interface: every setting that changes tokenization is in the cache key."""

from __future__ import annotations

import pytest

# ---- the tokenization cache key: every constructor argument either changes it or acts after tokenization
AFTER_TOKENIZATION = {
    "metric",
    "metric_mode",
    "label_smoothing",
    "threshold",
    "positive_label",
    "n_best",
    "max_answer_tokens",
    "null_threshold",
    "max_new_tokens",
    "num_samples",
    "generation",
    "cross_attention",
    "init_seed",
}  # the last two build the bert2bert model, not features


CHANGES_FEATURES = {  # task class name -> a non-default value for each argument that preprocess reads
    "SequenceClassification": {"labels": ["neg", "pos"], "multi_label": True, "label_separator": ";"},
    "Regression": {},
    "TokenClassification": {"scheme": "tags", "labels": ["O", "B-PER", "I-PER"], "label_all_subwords": True},
    "QuestionAnswering": {"doc_stride": 32},
    "CausalLM": {"chat_template": False},
    "Seq2Seq": {"max_source_length": 32, "max_target_length": 16, "source_prefix": "summarize: ", "char_level": True},
    "MultipleChoice": {},
}


@pytest.mark.parametrize("name", sorted(CHANGES_FEATURES))
def test_every_setting_that_changes_tokenization_is_in_the_cache_key(name):
    import inspect

    import tunelab.tasks

    cls = getattr(tunelab.tasks, name)
    arguments = set(inspect.signature(cls.__init__).parameters) - {"self"}
    # a new constructor argument must be classified here, so a forgotten cache key fails this test
    assert arguments == AFTER_TOKENIZATION & arguments | set(CHANGES_FEATURES[name])
    default = cls().fingerprint()
    for argument, value in CHANGES_FEATURES[name].items():
        assert cls(**{argument: value}).fingerprint() != default, f"{name}.{argument} is not in fingerprint()"


def test_every_task_class_is_covered_by_the_cache_key_test():
    import tunelab.tasks

    assert set(tunelab.tasks.__all__) - {"Task"} == set(CHANGES_FEATURES)
