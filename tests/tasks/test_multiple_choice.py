"""Multiple-choice head: (context, choice) pairs, padded choices, loss, accuracy, bad labels, SWAG-style
columns gathered into a list, predict and export, and the swag config."""

from __future__ import annotations

import datasets
import pytest
import torch

from helpers.runs import quick, read_metrics, train_in_process
from helpers.tasks import (
    SWAG_COLUMNS,
    compose_config,
    load_tokenizer_stub,
    loss_falls,
    swag_csv,
)
from tunelab.data.raw_splits import rename_columns
from tunelab.errors import TunelabError
from tunelab.tasks import MultipleChoice

ROWS = [
    {
        "text": "She opens the umbrella.",
        "question": "It",
        "choices": ["keeps her dry.", "eats a sandwich.", "sings."],
        "label": 0,
    },
    {"text": "The dog sees a ball.", "question": "The dog", "choices": ["reads a book.", "runs after it."], "label": 1},
    {
        "text": "He is hungry.",
        "question": "He",
        "choices": ["sleeps on a cloud.", "flies away.", "drives a moon.", "eats lunch."],
        "label": 3,
    },
]


def task_batch(task, rows):
    tokenizer = load_tokenizer_stub()
    f = task.preprocess({k: [r[k] for r in rows] for k in rows[0]}, tokenizer, 32)
    return f, task.collate(tokenizer)([{k: f[k][i] for k in f} for i in range(len(rows))])


def test_each_choice_is_paired_with_the_context_and_short_rows_are_padded():
    task = MultipleChoice()
    f, batch = task_batch(task, ROWS)
    tokenizer = load_tokenizer_stub()
    assert len(f["input_ids"][0]) == 3 and len(f["input_ids"][2]) == 4
    assert tokenizer.decode(f["input_ids"][1][1]) == "[CLS] the dog sees a ball. [SEP] the dog runs after it. [SEP]"
    assert batch["input_ids"].shape[:2] == (3, 4) and batch["labels"].tolist() == [0, 1, 3]
    assert batch["choice_mask"].tolist() == [[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]]
    assert batch["attention_mask"][1, 3].tolist()[:2] == [1, 0]  # a padding choice: one token attending to itself


def test_loss_falls_on_a_fixed_batch(tiny_backbone):
    task = MultipleChoice()
    losses, module, batch = loss_falls(tiny_backbone, task, ROWS, steps=40)
    assert losses[-1] < 0.3 * losses[0]
    assert torch.isfinite(module.model(**task.model_inputs(batch)).logits[batch["choice_mask"]]).all()


def test_accuracy_and_predictions_ignore_padding_choices():
    task = MultipleChoice()
    _, batch = task_batch(task, ROWS)
    logits = torch.tensor(
        [
            [2.0, 1.0, 0.0, 9.0],  # the padding choice has the top logit: still choice 0 -> right
            [3.0, 1.0, 9.0, 9.0],  # choice 0 -> wrong (label 1)
            [0.0, 0.0, 0.0, 1.0],
        ]
    )  # choice 3 -> right
    outputs = type("Out", (), {"logits": logits})()
    metrics = task.metrics()
    task.update_metrics(metrics, None, outputs, batch)
    assert metrics.compute()["accuracy"].item() == pytest.approx(2 / 3)
    first = task.postprocess(None, outputs, batch)[0]
    assert first["choice"] == 0 and first["text"] == "keeps her dry." and len(first["scores"]) == 3
    e = torch.exp(torch.tensor([2.0, 1.0, 0.0]))
    assert first["scores"] == pytest.approx((e / e.sum()).tolist(), abs=1e-6)
    # loss: the mean cross-entropy over each row's real choices
    ce = [
        -torch.log_softmax(torch.tensor(x), 0)[y]
        for x, y in (([2.0, 1.0, 0.0], 0), ([3.0, 1.0], 1), ([0.0, 0.0, 0.0, 1.0], 3))
    ]
    assert task.loss(outputs, batch).item() == pytest.approx(sum(ce).item() / 3, rel=1e-5)


@pytest.mark.parametrize(
    "row,message",
    [
        ({**ROWS[0], "label": 3}, r"Row 0: label 3 is not an index of its 3 choices \(0..2\)"),
        ({**ROWS[0], "label": -1}, r"Row 0: label -1 is not an index of its 3 choices"),
        ({**ROWS[0], "label": "yes"}, r"Row 0: label 'yes' is not a choice index"),
        ({**ROWS[0], "choices": ["only one"]}, r"Row 0: 'choices' must be a list of at least 2 texts"),
        ({**ROWS[0], "choices": ["fine", " "]}, r"Row 0: an empty choice"),
    ],
)
def test_bad_rows_are_named(row, message):
    with pytest.raises(TunelabError, match=message):
        MultipleChoice().preprocess({k: [v] for k, v in row.items()}, load_tokenizer_stub(), 32)


def test_swag_style_run_predicts_and_exports(tiny_backbone, tmp_path, capsys):
    from transformers import AutoModelForMultipleChoice

    from tunelab.commands.export import export_run
    from tunelab.commands.predict import predict_rows
    from tunelab.run.record import load_run

    data = swag_csv(tmp_path / "swag.csv")
    run = tmp_path / "run"
    code = train_in_process(
        *quick(
            tiny_backbone,
            run,
            "task=multiple_choice",
            "data=files",
            f"data.loader.train={data}",
            *SWAG_COLUMNS,
            "data.max_length=32",
        )
    )
    assert code == 0, capsys.readouterr().err[-2000:]
    assert 0.0 <= read_metrics(run)["metrics"]["test/accuracy"] <= 1.0
    _, module, datamodule, _ = load_run(str(run))
    [answer, three] = predict_rows(
        module,
        datamodule,
        [
            {"text": "The man gets a present.", "question": "The man", "choices": ["smiles.", "explodes loudly."]},
            {"text": "A chef cooks.", "choices": ["a", "b", "c"]},
        ],
    )
    assert answer["choice"] in (0, 1) and answer["text"] == ["smiles.", "explodes loudly."][answer["choice"]]
    assert len(three["scores"]) == 3 and sum(three["scores"]) == pytest.approx(1.0, abs=1e-4)

    folder = export_run(str(run), str(tmp_path / "export"))  # transformers has no multiple-choice pipeline
    exported = AutoModelForMultipleChoice.from_pretrained(str(folder)).eval()
    assert "AutoModelForMultipleChoice.from_pretrained" in (folder / "README.md").read_text()
    datamodule.set_predict_inputs([{"text": "A woman gets a present.", "choices": ["laughs.", "melts the moon."]}])
    batch = module.task.model_inputs(next(iter(datamodule.predict_dataloader())))
    with torch.no_grad():
        assert torch.allclose(exported(**batch).logits, module.model(**batch).logits, atol=1e-5)


def test_the_swag_config_composes_and_gathers_the_endings(tiny_backbone):
    from hydra.utils import instantiate

    cfg = compose_config("task=multiple_choice", "data=swag", f"model.backbone={tiny_backbone}")
    assert cfg.data.loader.path == "allenai/swag" and cfg.data.loader.name == "regular"
    dm = instantiate(cfg.data, task=instantiate(cfg.task))
    row = {
        "video-id": "v",
        "fold-ind": "1",
        "startphrase": "x",
        "sent1": "She sits.",
        "sent2": "She",
        "gold-source": "gold",
        "ending0": "reads.",
        "ending1": "flies.",
        "ending2": "swims.",
        "ending3": "sings.",
        "label": 2,
    }

    def rename(raw):
        return rename_columns(raw, dm.columns, dm.task, dm.name)[0]

    renamed = rename(datasets.DatasetDict({"train": datasets.Dataset.from_list([row])}))["train"][0]
    assert renamed == {
        "text": "She sits.",
        "question": "She",
        "choices": ["reads.", "flies.", "swims.", "sings."],
        "label": 2,
    }
    with pytest.raises(TunelabError, match=r"has no column 'ending3'"):
        rename(
            datasets.DatasetDict(
                {"train": datasets.Dataset.from_list([{k: v for k, v in row.items() if k != "ending3"}])}
            )
        )
