"""Seq2seq head: bert2bert from an encoder, target encoding, loss, generation metrics, the derived
CELEX and Lee sets, predict and export, LoRA on bert2bert, and the online data configs."""

from __future__ import annotations

import json

import datasets
import pytest
import torch

from helpers.runs import quick, read_metrics, train_in_process
from helpers.tasks import compose_config, load_tokenizer_stub, loss_falls
from tunelab.data.corpora import celex_plurals, lead_summary, lee_summaries
from tunelab.data.raw_splits import rename_columns
from tunelab.errors import TunelabError
from tunelab.tasks import Seq2Seq
from tunelab.tasks.seq2seq import score, spell, unspell

ROWS = [
    {"text": "house", "target": "houses"},
    {"text": "box", "target": "boxes"},
    {"text": "cat", "target": "cats"},
    {"text": "church", "target": "churches"},
]


def test_targets_start_after_cls_and_end_with_sep():
    tokenizer = load_tokenizer_stub()
    task = Seq2Seq(max_target_length=8)
    f = task.preprocess({"text": ["the big house"], "target": ["big houses"]}, tokenizer, 32)
    assert f["input_ids"][0][0] == tokenizer.cls_token_id and f["input_ids"][0][-1] == tokenizer.sep_token_id
    assert f["labels"][0] == tokenizer("big houses", add_special_tokens=False)["input_ids"] + [tokenizer.sep_token_id]
    assert "token_type_ids" not in f
    long = task.preprocess({"text": ["x"], "target": ["one two three four five six seven eight nine"]}, tokenizer, 32)
    assert len(long["labels"][0]) == 8 and long["labels"][0][-1] == tokenizer.sep_token_id  # truncated, still ends
    spelled = Seq2Seq(char_level=True).preprocess({"text": ["box"], "target": ["boxes"]}, tokenizer, 32)
    assert tokenizer.decode(spelled["labels"][0]) == "b o x e s [SEP]"


def test_spelling_round_trips():
    assert spell("big  cat") == "b i g _ c a t"
    assert unspell("b i g _ c a t") == "big cat" and unspell("bi g_cat") == "big cat"


def test_scores_match_hand_computed():
    # ROUGE: "the cat sat" vs "the cat ran away": unigrams 2 shared, P = 2/3, R = 2/4 -> F = 4/7;
    # bigrams: "the cat" shared, P = 1/2, R = 1/3 -> F = 0.4; LCS "the cat" -> 4/7.
    preds, refs = ["the cat sat"], ["the cat ran away"]
    assert score("rouge1", preds, refs) == pytest.approx(100 * 4 / 7)
    assert score("rouge2", preds, refs) == pytest.approx(40.0)
    assert score("rougeL", preds, refs) == pytest.approx(100 * 4 / 7)
    # BLEU: 7 words vs a 6-word reference: n-gram precisions 6/7, 5/6, 4/5, 3/4, no brevity penalty
    assert score("bleu", ["the cat sat on the mat today"], ["the cat sat on the mat"]) == pytest.approx(
        100 * (6 / 7 * 5 / 6 * 4 / 5 * 3 / 4) ** 0.25, abs=1e-4
    )
    assert score("exact_match", ["houses", " boxes ", "cat"], ["houses", "boxes", "cats"]) == pytest.approx(200 / 3)


def test_metrics_compare_generations_with_decoded_labels():
    tokenizer = load_tokenizer_stub()
    task = Seq2Seq(char_level=True, num_samples=1)
    f = task.preprocess({"text": ["box", "cat"], "target": ["boxes", "cats"]}, tokenizer, 32)
    batch = task.collate(tokenizer)([{k: f[k][i] for k in f} for i in range(2)])
    task.setup(tokenizer, None)  # decodes references and generations with it
    assert task.references(batch) == ["boxes", "cats"]
    task.generate = lambda model, b: ["boxes", "cat"]  # what a model would have generated
    metrics = task.metrics()
    task.update_metrics(metrics, None, None, batch)
    metrics.to("cpu")  # Lightning's self.log moves a logged metric to the device: the texts stay as they are
    got = {k: round(v.item(), 2) for k, v in metrics.compute().items()}
    assert got["exact_match"] == 50.0 and task._samples == [
        {"source": "box", "generated": "boxes", "reference": "boxes"}
    ]


def test_bert2bert_loss_falls_on_a_fixed_batch(tiny_backbone):
    from transformers import EncoderDecoderModel

    task = Seq2Seq(char_level=True, max_target_length=12, generation={"max_new_tokens": 12})
    losses, module, batch = loss_falls(tiny_backbone, task, ROWS, steps=40)
    model = module.model
    assert isinstance(model, EncoderDecoderModel)
    tokenizer = load_tokenizer_stub()
    assert model.config.decoder_start_token_id == tokenizer.cls_token_id
    assert model.generation_config.eos_token_id == tokenizer.sep_token_id
    assert model.generation_config.max_new_tokens == 12
    assert losses[-1] < 0.5 * losses[0]
    assert all(isinstance(text, str) for text in task.generate(model, batch))


def test_bert2bert_cross_attention_starts_from_self_attention_and_new_weights_are_seeded(tiny_backbone):
    block = Seq2Seq().build_model(tiny_backbone).decoder.bert.encoder.layer[1]
    assert torch.equal(block.crossattention.self.key.weight, block.attention.self.key.weight)
    assert torch.equal(block.crossattention.output.dense.bias, block.attention.output.dense.bias)

    def new_weights(seed):
        model = Seq2Seq(cross_attention="random", init_seed=seed).build_model(tiny_backbone)
        return (
            model.decoder.bert.encoder.layer[0].crossattention.self.key.weight,
            model.decoder.cls.predictions.transform.dense.weight,
        )

    torch.manual_seed(123)
    first = new_weights(0)
    torch.manual_seed(456)  # the global RNG does not matter ...
    assert all(torch.equal(a, b) for a, b in zip(first, new_weights(0)))
    assert not torch.equal(first[0], new_weights(1)[0])  # ... init_seed does
    with pytest.raises(TunelabError, match="task.cross_attention must be one of"):
        Seq2Seq(cross_attention="copy")


@pytest.mark.parametrize(
    "row,message",
    [
        ({"text": "box", "target": "  "}, r"Row 0: empty target text \('  '\) for source 'box': nothing to learn"),
        ({"text": "", "target": "boxes"}, r"Row 0: empty source text"),
        ({"text": "box", "target": None}, r"Row 0: empty target text \(None\)"),
    ],
)
def test_bad_rows_are_named(row, message):
    with pytest.raises(TunelabError, match=message):
        Seq2Seq().preprocess({k: [v] for k, v in row.items()}, load_tokenizer_stub(), 32)


def test_unknown_generation_setting_is_named(tiny_backbone):
    with pytest.raises(TunelabError, match=r"task.generation: unknown keys \['num_beamz'\]"):
        Seq2Seq(generation={"num_beamz": 2}).build_model(tiny_backbone)


def test_the_derived_sets_are_deterministic():
    plurals = celex_plurals()["train"]
    assert plurals == celex_plurals()["train"] and len(plurals["text"]) == 3965
    assert not any(" " in t or "-" in t for t in plurals["text"] + plurals["target"])
    assert sum(p == s + "es" for s, p in zip(plurals["text"], plurals["target"])) == 180
    article = "Fires burn near Sydney. Crews fought 12 blazes. It rained."
    assert lead_summary(article) == {"text": "Crews fought 12 blazes. It rained.", "target": "Fires burn near Sydney."}
    assert lead_summary("One sentence only.") is None
    lee = lee_summaries()
    assert lee == lee_summaries() and len(lee["train"]["text"]) == 300 and len(lee["test"]["text"]) == 48


def test_plurals_run_logs_samples_predicts_and_exports(tiny_backbone, tmp_path, capsys):
    from transformers import AutoModelForSeq2SeqLM, EncoderDecoderModel, pipeline

    from tunelab.commands.export import export_run
    from tunelab.commands.predict import predict_rows
    from tunelab.run.record import load_run

    run = tmp_path / "run"
    code = train_in_process(
        *quick(
            tiny_backbone,
            run,
            "task=seq2seq",
            "data=celex_plurals",
            "task.char_level=true",
            "task.max_target_length=12",
            "task.generation.max_new_tokens=6",
            "task.num_samples=2",
            "task.metric=val/exact_match",
            "data.eval_batch_size=8",
        )
    )
    assert code == 0, capsys.readouterr().err[-2000:]
    assert {f"test/{s}" for s in ("exact_match", "bleu", "rouge1", "rouge2", "rougeL")} <= set(
        read_metrics(run)["metrics"]
    )
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 2 and {"source", "generated", "reference"} <= set(samples[0])
    assert "[sample]" in capsys.readouterr().out

    _, module, datamodule, _ = load_run(str(run))
    answers = predict_rows(module, datamodule, [{"text": "house"}, {"text": "fox"}])
    assert len(answers) == 2 and all(isinstance(a["generated"], str) for a in answers)

    folder = export_run(str(run), str(tmp_path / "export"))
    exported = AutoModelForSeq2SeqLM.from_pretrained(str(folder)).eval()  # no tunelab needed
    assert isinstance(exported, EncoderDecoderModel)
    assert json.loads((folder / "generation_config.json").read_text())["max_new_tokens"] == 6
    assert "AutoModelForSeq2SeqLM.from_pretrained" in (folder / "README.md").read_text()
    datamodule.set_predict_inputs([{"text": "fox"}])
    batch = next(iter(datamodule.predict_dataloader()))
    with torch.no_grad():
        ours = module.model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        theirs = exported.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    assert torch.equal(ours, theirs)
    with pytest.raises(KeyError, match="removed from transformers"):  # transformers 5: no text2text pipeline
        pipeline("text2text-generation", model=str(folder))


def test_lora_on_bert2bert_trains_only_adapters_and_reloads(tiny_backbone, tmp_path, capsys):
    """peft=lora adapts query/value of the encoder, the decoder and the decoder's cross-attention; the
    checkpoint holds only the adapters, and the rest (random cross-attention included) is rebuilt the same."""
    from tunelab.run.record import load_run
    from tunelab.tuning.parts import unwrap

    run = tmp_path / "run"
    code = train_in_process(
        *quick(
            tiny_backbone,
            run,
            "task=seq2seq",
            "data=celex_plurals",
            "task.char_level=true",
            "task.generation.max_new_tokens=4",
            "peft=lora",
            "optimizer.lr=1e-2",
        )
    )
    assert code == 0, capsys.readouterr().err[-2000:]
    checkpoint = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    keys = set(checkpoint["state_dict"])
    assert checkpoint["tunelab"]["partial"] is True and keys
    assert all("lora_" in k for k in keys), sorted(k for k in keys if "lora_" not in k)[:5]
    assert any(".crossattention.self.query.lora_A" in k for k in keys)
    assert {k.split(".lora_")[0].rsplit(".", 1)[-1] for k in keys} == {"query", "value"}

    _, module, _, _ = load_run(str(run))
    trained = dict(unwrap(module.model).named_parameters())
    fresh = dict(Seq2Seq().build_model(tiny_backbone).named_parameters())
    changed = {
        n for n, p in trained.items() if "lora_" not in n and not torch.equal(p, fresh[n.replace(".base_layer", "")])
    }
    assert not changed, sorted(changed)[:5]  # every non-LoRA weight is the pretrained (or seeded) one
    assert any(p.abs().sum() > 0 for n, p in trained.items() if "lora_B" in n)  # B starts at zero: it trained


def test_online_configs_compose_and_map_their_columns(tiny_backbone):
    from hydra.utils import instantiate

    for data, columns in (
        ("xsum", {"text": "document", "target": "summary"}),
        ("wmt16_ro_en", {"text": "translation.ro", "target": "translation.en"}),
    ):
        cfg = compose_config("task=seq2seq", f"data={data}", f"model.backbone={tiny_backbone}")
        dm = instantiate(cfg.data, task=instantiate(cfg.task))
        assert {k: v for k, v in dm.columns.items() if v} == columns
    # WMT rows are {"translation": {"ro": ..., "en": ...}}: the loader flattens them to dotted columns
    wmt = datasets.DatasetDict(
        {"train": datasets.Dataset.from_list([{"translation": {"ro": "o casa", "en": "a house"}}])}
    ).flatten()
    renamed, _ = rename_columns(wmt, dm.columns, dm.task, dm.name)
    assert renamed["train"][0] == {"text": "o casa", "target": "a house"}
    assert cfg.data.loader.flatten is True and cfg.data.loader.name == "ro-en"
