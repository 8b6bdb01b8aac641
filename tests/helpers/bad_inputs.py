"""The 42 bad inputs of tests/test_errors.py: overrides (and files they point at) -> the message they must get.

Kept apart from the test so the test reads as one loop over the table.
"""

from __future__ import annotations

from pathlib import Path


def write_file(path, text: str | bytes):
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def config_and_data_cases(tmp):
    good = write_file(
        tmp / "good.csv", "text,label\n" + "".join(f"nice film {i},pos\nbad film {i},neg\n" for i in range(20))
    )
    return {
        "typo in a config key": (
            ["trainer.max_epoch=2"],
            r"Could not override 'trainer.max_epoch': trainer has no key "
            r"'max_epoch'. Did you mean 'max_epochs'\? Its keys: .*accelerator",
        ),
        "typo in an optimizer key": (["optimizer.lrr=1e-4"], r"optimizer has no key 'lrr'. Did you mean 'lr'\?"),
        "typo in a group name": (
            ["optimzer.lr=1e-4"],
            r"the top level of the config has no key 'optimzer'. "
            r"Did you mean 'optimizer'\?",
        ),
        "unknown group option": (["model=minilmm"], r"Could not find 'model/minilmm'.*minilm"),
        "unknown top-level key": (["learning_rate=1e-3"], r"Could not override 'learning_rate'"),
        "wrong type for lr": (["optimizer.lr=fast"], r"optimizer.lr must be a number, got 'fast'"),
        "negative learning rate": (["optimizer.lr=-1e-5"], r"optimizer.lr=-1e-05 is out of range \(must be > 0"),
        "batch size 0": (["data.batch_size=0"], r"data.batch_size=0 is out of range"),
        "missing required value": (["data=files"], r"Missing mandatory value: data.loader.train"),
        "bad backbone path": (
            ["model.backbone=./no/such/model"],
            r"Backbone './no/such/model' is neither an existing folder",
        ),
        "hub id while offline": (["model.backbone=bert-base-uncased"], r"HF_HUB_OFFLINE is set"),
        "missing column": (
            ["data=files", f"data.loader.train={good}", "data.columns.text=review"],
            r"has no column 'review'.*Its columns are \['text', 'label'\]",
        ),
        "unknown label in test": (
            [
                "data=files",
                f"data.loader.train={good}",
                f"data.loader.test={write_file(tmp / 'test.csv', 'text,label' + chr(10) + 'meh,neutral' + chr(10))}",
            ],
            r"test split.*Unknown label 'neutral'",
        ),
        "missing file": (
            ["data=files", f"data.loader.train={tmp / 'nope.csv'}"],
            r"train file '.*nope.csv' does not exist",
        ),
        "empty split": (["data.max_samples.test=0"], r"test split of 'mr' is empty"),
        "unknown built-in dataset": (["data.loader.name=mrr"], r"Unknown built-in dataset 'mrr'. Did you mean 'mr'\?"),
        "empty file": (
            ["data=files", f"data.loader.train={write_file(tmp / 'empty.csv', '')}"],
            r"train file '.*empty.csv' is empty",
        ),
        "None text": (
            [
                "data=files",
                f"data.loader.train={write_file(tmp / 'holes.csv', 'text,label' + chr(10) + 'fine,pos' + chr(10) + ',neg' + chr(10))}",
            ],
            r"Row 1: column 'text' holds None, not text",
        ),
        "label id out of range": (
            [
                "data=files",
                f"data.loader.train={write_file(tmp / 'ids.csv', 'text,label' + chr(10) + ''.join(f'film {i},{i % 2}' + chr(10) for i in range(20)))}",
                f"data.loader.test={write_file(tmp / 'ids-test.csv', 'text,label' + chr(10) + 'c,7' + chr(10))}",
            ],
            r"test split.*Unknown label 7.*\['0', '1'\]",
        ),
        "infinite learning rate": (["optimizer.lr=inf"], r"optimizer.lr=inf is not a finite number"),
        "wrong type for max_epochs": (
            ["trainer.max_epochs=three"],
            r"trainer.max_epochs must be a number, got 'three'",
        ),
        "bad split ratios": (
            ["data.split_ratios=[0.5,0.2,0.2]"],
            r"data.split_ratios must be three non-negative numbers",
        ),
        "checkpoint name escapes the run": (
            ["callbacks.model_checkpoint.filename=../../escaped"],
            r"must be a plain file name",
        ),
        "assets missing": (
            ["model.backbone=minilm", f"+env_cache={tmp / 'empty-cache'}"],
            r"The offline asset '\w+' .* is not in the cache .*empty-cache.*Fetch it with:  tunelab assets",
        ),
        "metric typo": (
            ["task.metric=val/acc"],
            r"task.metric=val/acc is not a metric this task logs. Did you mean 'val/accuracy'\?",
        ),
        "metric typo, no validation": (
            ["task.metric=val/acc", "+trainer.limit_val_batches=0"],
            r"task.metric=val/acc is not a metric",
        ),
        "max_steps 0": (
            ["trainer.max_steps=0"],
            r"trainer.max_steps=0 is out of range \(must be > 0 or -1 for no limit",
        ),
        "max_steps not a number": (["trainer.max_steps=abc"], r"trainer.max_steps must be a number, got 'abc'"),
        "unknown optimizer key": (
            ["+optimizer.lrr=1e-4"],
            r"torch.optim.AdamW takes no argument 'lrr' \(optimizer.lrr: Did you mean 'lr'\?\)",
        ),
        "another optimizer's settings": (
            ["optimizer._target_=torch.optim.SGD"],
            r"torch.optim.SGD takes no argument 'betas', 'eps' "
            r"\(optimizer.betas comes from the optimizer config: remove it with ~optimizer.betas.*optimizer=sgd",
        ),
        "Hydra's +key advice for a trainer typo": (
            ["+trainer.max_epoch=2"],
            r"lightning.Trainer takes no argument 'max_epoch' "
            r"\(trainer.max_epoch: Did you mean 'max_epochs'\?\)",
        ),
        "unknown scheduler key": (
            ["+scheduler.warmupp=0.2"],
            r"tunelab.model.optim.linear_with_warmup takes no argument 'warmupp' "
            r"\(scheduler.warmupp: Did you mean 'warmup'\?\).*It takes warmup.",
        ),
        "train sampled to nothing": (["data.max_samples.train=0"], r"The train split of 'mr' is empty"),
        "cache is a file": (
            ["model.backbone=minilm", f"+env_cache={good}"],
            r"TUNELAB_CACHE=.*good.csv is a file, not a folder.*tunelab assets \w+",
        ),
        "cache not writable": (
            ["data=files", f"data.loader.train={good}", "data.cache=true", f"+env_cache={good}/sub"],
            r"Cannot write the tokenization cache '.*sub/tokenized': .*good.csv is a file, not a folder.*data.cache=false",
        ),
    }


def write_checkpoint(path, task: str, state: dict):
    import torch

    torch.save({"state_dict": state, "tunelab": {"task": task, "task_state": {}}}, path)
    return str(path)


def model_cases(tmp, tiny_backbone):
    import shutil

    import torch

    remote = tmp / "remote-code"
    remote.mkdir()
    (remote / "config.json").write_text(
        '{"model_type": "my_arch", "auto_map": {"AutoConfig": "configuration_my.MyConfig"}}'
    )
    corrupt = Path(shutil.copytree(tiny_backbone, tmp / "corrupt-weights"))
    weights = corrupt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    truncated = tmp / "truncated.ckpt"
    truncated.write_bytes(b"PK\x03\x04 not a whole checkpoint")
    small = ["data.max_samples.train=32", "data.max_samples.validation=16", "data.max_samples.test=16"]
    return {
        "checkpoint of another head": (
            [f"ckpt_path={write_checkpoint(tmp / 'reg.ckpt', 'Regression', {})}", *small],
            r"was trained with the Regression head, but this run uses SequenceClassification",
        ),
        "checkpoint of another backbone": (
            [
                f"ckpt_path={write_checkpoint(tmp / 'big.ckpt', 'SequenceClassification', {'model.classifier.weight': torch.zeros(2, 384)})}",
                *small,
            ],
            r"does not fit this model \(shapes differ: model.classifier.weight \(2, 384\) vs \(2, 32\)",
        ),
        "missing checkpoint": (
            [f"ckpt_path={tmp / 'nope.ckpt'}", *small],
            r"ckpt_path=.*nope.ckpt does not exist.*ckpt_path=last",
        ),
        "truncated checkpoint": ([f"ckpt_path={truncated}", *small], r"truncated.ckpt is not a readable checkpoint"),
        "backbone needs trust_remote_code": (
            [f"model.backbone={remote}"],
            r"ships its own modelling code.*model.trust_remote_code=true",
        ),
        "corrupt weights file": (
            [f"model.backbone={corrupt}", *small],
            r"weights of backbone .* cannot be read.*truncated or corrupt",
        ),
    }


CASE_NAMES = [
    # config
    "typo in a config key",
    "typo in an optimizer key",
    "typo in a group name",
    "unknown group option",
    "unknown top-level key",
    "wrong type for lr",
    "negative learning rate",
    "batch size 0",
    "missing required value",
    "infinite learning rate",
    "wrong type for max_epochs",
    "bad split ratios",
    "checkpoint name escapes the run",
    "metric typo",
    "metric typo, no validation",
    "max_steps 0",
    "max_steps not a number",
    "unknown optimizer key",
    "another optimizer's settings",
    "Hydra's +key advice for a trainer typo",
    "unknown scheduler key",
    "train sampled to nothing",
    # data
    "missing column",
    "unknown label in test",
    "unreadable file",
    "missing file",
    "empty split",
    "unknown built-in dataset",
    "empty file",
    "None text",
    "label id out of range",
    # model
    "bad backbone path",
    "checkpoint of another head",
    "checkpoint of another backbone",
    "missing checkpoint",
    "truncated checkpoint",
    "backbone needs trust_remote_code",
    "corrupt weights file",
    # environment
    "hub id while offline",
    "assets missing",
    "cache is a file",
    "cache not writable",
]


# rejected by Hydra while it composes the config, before tunelab's train() (and its run.json) starts
BEFORE_THE_RUN = {
    "typo in a config key",
    "typo in an optimizer key",
    "typo in a group name",
    "unknown group option",
    "unknown top-level key",
}
